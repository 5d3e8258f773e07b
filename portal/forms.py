"""Forms of the UI shell."""

from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


class LoginForm(AuthenticationForm):
    # One message whichever half was wrong: never tell an attacker which usernames exist.
    error_messages = {
        "invalid_login": _("用户名或密码错误。"),
        "inactive": _("用户名或密码错误。"),
    }

    def get_invalid_login_error(self):
        # A campus backend that knows more (directory down, account locked there, campus-only
        # account) says so; a wrong password stays the one message above.
        from audit.security import auth_failure_of

        message = auth_failure_of(self.request).get("message")
        if message:
            return ValidationError(message, code="invalid_login")
        return super().get_invalid_login_error()

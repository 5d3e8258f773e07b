"""Password validators of the 等保 password policy; the thresholds come from the security policy.

Listed in settings.AUTH_PASSWORD_VALIDATORS, so every path that sets a password through
Django's validation (the change page, the admin, `changepassword`) applies them.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.errors import AuditError
from audit.models import PasswordHistory
from audit.policy import current_policy


def character_classes(password: str) -> int:
    """How many of the four classes (lower, upper, digit, other) the password uses."""
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


class PolicyMinimumLengthValidator:
    def validate(self, password, user=None):
        minimum = current_policy().password_min_length
        if len(password) < minimum:
            raise ValidationError(
                ngettext("密码至少需要 %(min)d 个字符。", "密码至少需要 %(min)d 个字符。", minimum) % {"min": minimum},
                code=AuditError.PASSWORD_TOO_SHORT,
            )

    def get_help_text(self):
        return _("至少 %(min)d 个字符。") % {"min": current_policy().password_min_length}


class CharacterClassesValidator:
    def validate(self, password, user=None):
        needed = current_policy().password_min_classes
        if character_classes(password) < needed:
            raise ValidationError(
                ngettext(
                    "密码需包含大写字母、小写字母、数字、特殊字符中的至少 %(n)d 类。",
                    "密码需包含大写字母、小写字母、数字、特殊字符中的至少 %(n)d 类。",
                    needed,
                )
                % {"n": needed},
                code=AuditError.PASSWORD_TOO_SIMPLE,
            )

    def get_help_text(self):
        return _("包含大写字母、小写字母、数字、特殊字符中的至少 %(n)d 类。") % {
            "n": current_policy().password_min_classes
        }


class NotUsernameValidator:
    """The password must not be, or contain, the username (either way round, any case)."""

    def validate(self, password, user=None):
        username = (getattr(user, "username", "") or "").lower()
        if username and len(username) >= 3 and (username in password.lower() or password.lower() in username):
            raise ValidationError(_("密码不能包含用户名。"), code=AuditError.PASSWORD_CONTAINS_USERNAME)

    def get_help_text(self):
        return _("不能包含用户名。")


class PasswordHistoryValidator:
    """Not one of the last N passwords (the current one included); records each change."""

    def validate(self, password, user=None):
        if user is None or not getattr(user, "pk", None):
            return
        keep = current_policy().password_history
        hashes = list(
            PasswordHistory.objects.filter(user_id=user.pk)
            .order_by("-created_at", "-id")
            .values_list("password", flat=True)[:keep]
        )
        current = get_user_model().objects.filter(pk=user.pk).values_list("password", flat=True).first()
        if current and current not in hashes:
            hashes.insert(0, current)
        if any(check_password(password, encoded) for encoded in hashes[:keep]):
            raise ValidationError(
                ngettext(
                    "新密码不能与最近 %(n)d 次使用过的密码相同。", "新密码不能与最近 %(n)d 次使用过的密码相同。", keep
                )
                % {"n": keep},
                code=AuditError.PASSWORD_REUSED,
            )

    def password_changed(self, password, user=None):
        # Called by Django after every save() that set a new password, whichever path set it.
        from audit.security import password_history_add

        if user is not None and getattr(user, "pk", None):
            password_history_add(user=user)

    def get_help_text(self):
        return _("不能与最近 %(n)d 次使用过的密码相同。") % {"n": current_policy().password_history}

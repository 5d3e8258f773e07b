"""API tokens with a lifetime: POST /api/v1/auth/token/ answers `expires_at` (settings.API_TOKEN_HOURS).

Issue #14 brings per-device tokens and revocation; until then one token per account, replaced
when it has expired. Service accounts' tokens do not expire (they are made for scripts and
are revoked by disabling the account).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from tenants.identity.models import AccountState


def _is_service(user) -> bool:
    return AccountState.objects.filter(user_id=user.pk, kind=AccountState.Kind.SERVICE).exists()


def token_expires_at(token: Token) -> datetime | None:
    if _is_service(token.user):
        return None
    return token.created + timedelta(hours=settings.API_TOKEN_HOURS)


def token_issue(*, user) -> tuple[Token, datetime | None]:
    """The account's token, a fresh one when the old one has expired."""
    token = Token.objects.filter(user=user).first()
    if token is not None:
        expires = token_expires_at(token)
        if expires is None or expires > timezone.now():
            return token, expires
        token.delete()
    token = Token.objects.create(user=user)
    return token, token_expires_at(token)


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        expires = token_expires_at(token)
        if expires is not None and expires <= timezone.now():
            raise exceptions.AuthenticationFailed(_("令牌已过期，请重新获取。"))
        return user, token

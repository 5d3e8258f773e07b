"""API tokens that follow the login rules: per device, named, expiring, revocable, checked on every request.

A person asks for a token with POST /api/v1/auth/token/ (password, and the one-time code when their
roles need a second factor), names the device it is for, and sees and revokes their tokens on
"我的令牌" (/accounts/tokens/) or at /api/v1/auth/tokens/. A person's token expires after
API_TOKEN_HOURS (12 by default). Only the security admin makes service accounts, whose token lasts
until it is revoked or the account is disabled.

Every request with a token is checked as a session is (`ApiTokenAuthentication`): the account is
active, the token has not expired, the idle timeout of the security policy has not passed since
it was last used, the password has not expired or been reset by an admin, and a token issued
without a second factor never acts for an account whose roles now need one. A person's tokens are
deleted when the password changes (`TokensEndOnPasswordChange`, a password validator, so every way
of changing it counts), when the account is disabled, and when a role that needed a second factor
is revoked (`tokens_revoke`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from audit.actions import Action
from audit.errors import AuditError
from audit.policy import current_policy
from audit.security import needs_second_factor, password_expired
from audit.services import event_record
from common.errors import NotFound, ServiceError
from tenants.identity.errors import ErrorCode as IdentityError
from tenants.identity.models import ApiToken

KEYWORDS = (b"token", b"bearer")
# A person keeps at most this many tokens (devices); the oldest goes when another is issued.
MAX_PERSON_TOKENS = 20
# last_used_at is written at most this often (seconds): the idle timeout has minutes of resolution.
USE_RESOLUTION = 30


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_expires_at(token: ApiToken) -> datetime | None:
    return token.expires_at


def _create(*, user, name: str, kind: str, second_factor: bool, created_by=None) -> tuple[ApiToken, str]:
    key = secrets.token_urlsafe(32)
    expires = None if kind == ApiToken.Kind.SERVICE else timezone.now() + timedelta(hours=settings.API_TOKEN_HOURS)
    token = ApiToken.objects.create(
        user=user,
        name=(name or "API").strip()[:100] or "API",
        kind=kind,
        key_hash=_hash(key),
        prefix=key[:8],
        second_factor=second_factor,
        expires_at=expires,
        created_by=created_by,
    )
    return token, key


def token_issue(*, user, name: str = "", second_factor: bool = False) -> tuple[ApiToken, str]:
    """A new token for one of the person's devices (the key is returned once, never stored)."""
    with transaction.atomic():
        ApiToken.objects.filter(user=user, expires_at__lte=timezone.now()).delete()
        token, key = _create(user=user, name=name, kind=ApiToken.Kind.PERSON, second_factor=second_factor)
        surplus = ApiToken.objects.filter(user=user, kind=ApiToken.Kind.PERSON).values_list("pk", flat=True)
        ApiToken.objects.filter(pk__in=list(surplus[MAX_PERSON_TOKENS:])).delete()
        event_record(
            action=Action.TOKEN_ISSUED,
            actor=user,
            target=user,
            detail={"token": token.prefix, "name": token.name, "second_factor": second_factor},
        )
    return token, key


def service_token_issue(*, actor, user, name: str = "service") -> tuple[ApiToken, str]:
    """The token of a service account, made by the security admin (the caller checks that); it does not expire.

    The security admin's own session passed the second factor, which the token carries on."""
    ApiToken.objects.filter(user=user).delete()
    return _create(user=user, name=name, kind=ApiToken.Kind.SERVICE, second_factor=True, created_by=actor)


def tokens_revoke(*, user, reason: str, actor=None) -> int:
    """Delete every token of `user` (password changed, account disabled, a second-factor role revoked)."""
    deleted, _rows = ApiToken.objects.filter(user=user).delete()
    if deleted:
        event_record(action=Action.TOKEN_REVOKED, actor=actor, target=user, detail={"count": deleted, "reason": reason})
    return deleted


def token_list_for(user):
    """The caller's own tokens (nobody lists another person's)."""
    if not getattr(user, "is_authenticated", False):
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_revoke(*, actor, token_id: int) -> None:
    """The owner revokes one of their tokens; another person's token is not found."""
    with transaction.atomic():
        token = token_list_for(actor).filter(pk=token_id).first()
        if token is None:
            raise NotFound(_("令牌不存在。"))
        event_record(
            action=Action.TOKEN_REVOKED,
            actor=actor,
            target=actor,
            detail={"token": token.prefix, "name": token.name, "reason": "revoked by owner"},
        )
        token.delete()


class TokensEndOnPasswordChange:
    """A password validator that validates nothing: Django calls `password_changed` after every change
    of a password (set_password + save: the account page, an admin's reset, `changepassword`), and a
    person's API tokens end with the password they were issued under."""

    def validate(self, password, user=None):
        return None

    def password_changed(self, password, user=None):
        if user is not None and user.pk:
            tokens_revoke(user=user, reason="password changed")

    def get_help_text(self):
        return ""


def _refuse(message: str, code: str, status: int = 401):
    return ServiceError(message, code=code, status=status)


def _check_person(token: ApiToken, user, now) -> None:
    """The rules a session follows, for a person's token: idle timeout, password age and reset."""
    from tenants.identity.selectors import must_change_password

    idle = timedelta(minutes=current_policy().idle_timeout_minutes)
    if (token.last_used_at or token.created_at) < now - idle:
        token.delete()
        raise _refuse(_("令牌空闲超时，请重新获取。"), AuditError.SESSION_EXPIRED)
    if must_change_password(user):
        raise _refuse(_("管理员重置了您的密码，请先在网页上修改密码。"), IdentityError.PASSWORD_CHANGE_REQUIRED, 403)
    if password_expired(user):
        raise _refuse(_("您的密码已过期，请先修改密码。"), AuditError.PASSWORD_EXPIRED, 403)


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` (or `Bearer <key>`), under the same rules as a signed-in session.

    A TokenAuthentication for the OpenAPI schema (drf-spectacular describes its header); the
    tokens are ours (ApiToken), DRF's authtoken table is not read."""

    keyword = "Token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("令牌格式错误。"))
        try:
            key = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(_("令牌格式错误。")) from exc
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str):
        now = timezone.now()
        token = ApiToken.objects.select_related("user").filter(key_hash=_hash(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("令牌无效。"))
        if token.expires_at is not None and token.expires_at <= now:
            token.delete()
            raise exceptions.AuthenticationFailed(_("令牌已过期，请重新获取。"))
        user = token.user
        if token.kind == ApiToken.Kind.PERSON:
            _check_person(token, user, now)
        # Checked on every request: a role granted after the token was issued counts too.
        if not token.second_factor and getattr(settings, "SECOND_FACTOR_REQUIRED", True) and needs_second_factor(user):
            raise _refuse(
                _("此令牌签发时未验证动态口令，不能用于需要双因素认证的角色；请带 otp 重新获取令牌。"),
                AuditError.SECOND_FACTOR_REQUIRED,
                403,
            )
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= USE_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return user, token

    def authenticate_header(self, request):
        return self.keyword

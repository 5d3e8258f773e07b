"""The three ways in: local passwords, CAS (django-cas-ng) and LDAP/AD (django-auth-ldap).

Each campus backend turns its server's answer into a CampusIdentity and hands it to
tenants.identity.provisioning; each refusal is noted on the request (audit.security), so the
failed-login event names its source and reason and the page can say what went wrong. Every
way in passes django-axes' lockout: the form and the token API through Django's
authenticate(), CAS by asking axes about the account the ticket named.
"""

import logging

import ldap
import requests
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.utils.translation import gettext as _
from django_auth_ldap.backend import LDAPBackend
from django_cas_ng.backends import CASBackend

from audit.security import SESSION_EXTERNAL_MFA, auth_failure_note
from tenants.identity import cas
from tenants.identity.errors import ErrorCode
from tenants.identity.identity import IdentityRefused, identity_from_attributes
from tenants.identity.ldap import ldap_settings
from tenants.identity.models import Source
from tenants.identity.provisioning import identity_sign_in
from tenants.identity.selectors import local_password_refusal

log = logging.getLogger("tenants.identity")

UNAVAILABLE = "unavailable"


def note_unavailable(request, *, source: str, server: str, reason: str) -> None:
    """The campus server did not answer: the page and the token API say so, the audit log says why."""
    log.warning("%s server %s unavailable: %s", source, server, reason)
    auth_failure_note(
        request,
        source=source,
        reason=reason,
        code=ErrorCode.DIRECTORY_UNAVAILABLE,
        message=_("统一身份认证服务暂时无法访问，请稍后再试。平台管理员仍可使用本地账号登录。"),
    )


def _locked_out(request, username: str) -> bool:
    return bool(
        settings.AXES_ENABLED and request is not None and AxesProxyHandler.is_locked(request, {"username": username})
    )


class LocalBackend(ModelBackend):
    """Local passwords, except for accounts linked to a campus identity (unless the security admin allowed it)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            return None
        refusal = local_password_refusal(user)
        if refusal:
            auth_failure_note(
                request,
                source=Source.LOCAL,
                reason=refusal,
                code=ErrorCode.LOCAL_PASSWORD_DISABLED,
                message=_("该账号已关联统一身份认证，请使用统一身份认证登录。"),
            )
            return None
        return user


class CampusCASBackend(CASBackend):
    """A CAS service ticket, validated by the campus CAS server, names a campus identity."""

    def authenticate(self, request, ticket, service):
        if not settings.CAS_SERVER_URL or not ticket:
            return None
        try:
            answer = cas.validate_ticket(ticket=ticket, service=service, request=request)
        except requests.RequestException as exc:
            reason = f"CAS server unreachable: {type(exc).__name__}"
            note_unavailable(request, source=Source.CAS, server=settings.CAS_SERVER_URL, reason=reason)
            return None
        if not answer.ok:
            auth_failure_note(
                request,
                source=Source.CAS,
                reason=f"ticket refused by CAS: {answer.failure_code} {answer.failure_text}"[:500],
                code=answer.failure_code,
                message=_("统一身份认证票据无效或已过期，请重新登录。"),
            )
            return None
        return self._sign_in(request, answer)

    def _sign_in(self, request, answer: cas.Validation):
        mfa = next(
            (v for v in answer.attributes.get(settings.CAS_MFA_ATTRIBUTE, []) if v in settings.CAS_MFA_VALUES), ""
        )
        try:
            identity = identity_from_attributes(
                source=Source.CAS,
                subject=answer.user,
                attributes=answer.attributes,
                number_attribute=settings.CAS_NUMBER_ATTRIBUTE,
                names=settings.DIRECTORY_ATTRIBUTES,
                groups=answer.attributes.get("memberOf", []),
                mfa=mfa,
            )
            user = identity_sign_in(identity=identity)
        except IdentityRefused as exc:
            auth_failure_note(request, source=Source.CAS, reason=str(exc.code), code=exc.code, message=exc.message)
            request.cc_auth_username = answer.user
            return None
        if not self.user_can_authenticate(user) or _locked_out(request, user.username):
            auth_failure_note(
                request, source=Source.CAS, reason="account disabled or locked",
                message=_("该账号已停用或已锁定，请联系管理员。"),
            )  # fmt: skip
            return None
        if request is not None and hasattr(request, "session"):
            if identity.mfa:
                request.session[SESSION_EXTERNAL_MFA] = f"cas:{identity.mfa}"
            else:
                request.session.pop(SESSION_EXTERNAL_MFA, None)
        return user


class CampusLDAPBackend(LDAPBackend):
    """Username (uid or number, by LDAP_USER_FILTER) and password, bound against the campus directory."""

    @property
    def settings(self):
        if self._settings is None:
            self._settings = ldap_settings()
        return self._settings

    @settings.setter
    def settings(self, value):
        self._settings = value

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LDAP_SERVER_URI or not username or not password:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def authenticate_ldap_user(self, ldap_user, password):
        request = ldap_user._request
        try:
            dn = ldap_user.dn  # the service account's search; a down directory is noted by signals.ldap_error
        except ldap.LDAPError as exc:
            return self._unavailable(request, exc)
        if dn is None:
            return None  # not in the directory: the local backend already answered for local accounts
        if ldap_user.attrs.get("pwdAccountLockedTime"):
            auth_failure_note(
                request, source=Source.LDAP, reason="account locked in the directory",
                message=_("您的统一身份账号已被锁定，请联系信息中心。"),
            )  # fmt: skip
            return None
        try:
            user = ldap_user.authenticate(password)
        except IdentityRefused as exc:
            auth_failure_note(request, source=Source.LDAP, reason=str(exc.code), code=exc.code, message=exc.message)
            return None
        if user is None and not getattr(request, "cc_auth_failure", None):
            auth_failure_note(request, source=Source.LDAP, reason="invalid credentials")
        return user

    def _unavailable(self, request, exc):
        reason = f"directory unavailable: {type(exc).__name__}"
        note_unavailable(request, source=Source.LDAP, server=settings.LDAP_SERVER_URI, reason=reason)
        return None

    def get_or_build_user(self, username, ldap_user):
        """Not by username: the number matches the account (tenants.identity.provisioning)."""
        identity = identity_from_attributes(
            source=Source.LDAP,
            subject=ldap_user.attrs.get("uid", [username])[0] if ldap_user.attrs else username,
            attributes=ldap_user.attrs,
            number_attribute=settings.LDAP_NUMBER_ATTR,
            names=settings.DIRECTORY_ATTRIBUTES,
            staff=",ou=staff," in (ldap_user.dn or "").lower(),
            groups=ldap_user.group_names if self.settings.GROUP_TYPE is not None else (),
        )
        user = identity_sign_in(identity=identity)
        if not user.is_active:
            raise IdentityRefused(_("该账号已停用，请联系管理员。"), code=ErrorCode.ACCOUNT_FORBIDDEN)
        return user, False

    def get_user(self, user_id):
        """A disabled account's sessions end at once, as with the local backend."""
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

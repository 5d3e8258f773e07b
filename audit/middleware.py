"""Request middleware of the audit app: audit context, idle timeout, second factor, password expiry, CSP."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit import context
from audit.errors import AuditError
from common.http import wants_json

SESSION_LAST_ACTIVITY = "_cc_last_activity"
# Writing the session on every request costs a write per request; a few seconds of slack do not.
ACTIVITY_RESOLUTION = 5


class AuditContextMiddleware:
    """Puts the request's source IP, user agent and request id into the audit context."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = context.activate(
            context.AuditContext(
                source_ip=request.META.get("REMOTE_ADDR", ""),
                user_agent=request.META.get("HTTP_USER_AGENT", "")[:255],
                request_id=getattr(request, "request_id", ""),
            )
        )
        try:
            return self.get_response(request)
        finally:
            context.deactivate(token)


def _exempt(request) -> bool:
    path = request.path
    prefixes = (settings.STATIC_URL, "/i18n/", "/healthz", "/audit/account/", reverse("logout"), reverse("login"))
    return any(path.startswith(prefix) for prefix in prefixes)


class IdleTimeoutMiddleware:
    """Ends a session on the server after the policy's idle minutes (等保: 登录连接超时自动退出)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            from audit.policy import current_policy
            from audit.signals import SESSION_LOGOUT_REASON

            now = time.time()
            last = request.session.get(SESSION_LAST_ACTIVITY)
            limit = current_policy().idle_timeout_minutes * 60
            if last is not None and now - last > limit:
                setattr(request, SESSION_LOGOUT_REASON, "idle timeout")
                logout(request)  # flushes the session row: it is gone on the server, not just the cookie
                message = ngettext(
                    "您已空闲超过 %(n)d 分钟，请重新登录。", "您已空闲超过 %(n)d 分钟，请重新登录。", limit // 60
                ) % {"n": limit // 60}
                if wants_json(request):
                    return JsonResponse(
                        {"code": AuditError.SESSION_EXPIRED, "message": message, "detail": {}}, status=401
                    )
                messages.warning(request, message)
                return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}")
            if last is None or now - last >= ACTIVITY_RESOLUTION:
                request.session[SESSION_LAST_ACTIVITY] = now
        return self.get_response(request)


def _second_factor_asserted(request) -> bool:
    """The campus CAS server asserted a second factor for this session (recorded at sign-in)."""
    from audit.security import SESSION_EXTERNAL_MFA

    return bool(getattr(request, "session", {}).get(SESSION_EXTERNAL_MFA)) if hasattr(request, "session") else False


class SecondFactorMiddleware:
    """Accounts that need a second factor reach nothing but enrolment/verification until they use it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            getattr(settings, "SECOND_FACTOR_REQUIRED", True)
            and user is not None
            and user.is_authenticated
            and not _exempt(request)
            and not (getattr(user, "is_verified", None) and user.is_verified())
            and not _second_factor_asserted(request)
        ):
            from audit.security import has_second_factor, needs_second_factor

            if needs_second_factor(user):
                enrolled = has_second_factor(user)
                message = _("您的账号需要双因素认证。") if enrolled else _("您的账号需要先绑定动态口令（双因素认证）。")
                if wants_json(request):
                    return JsonResponse(
                        {"code": AuditError.SECOND_FACTOR_REQUIRED, "message": message, "detail": {}}, status=403
                    )
                target = reverse("audit:otp_verify") if enrolled else reverse("audit:otp_enrol")
                return HttpResponseRedirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


class PasswordExpiryMiddleware:
    """After a login with an expired password, only the change-password page is reachable."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from audit.security import SESSION_PASSWORD_EXPIRED

        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and hasattr(request, "session")
            and request.session.get(SESSION_PASSWORD_EXPIRED)
            and not _exempt(request)
        ):
            message = _("您的密码已过期，请先修改密码。")
            if wants_json(request):
                return JsonResponse({"code": AuditError.PASSWORD_EXPIRED, "message": message, "detail": {}}, status=403)
            return HttpResponseRedirect(
                f"{reverse('audit:password_change')}?{urlencode({'next': request.get_full_path()})}"
            )
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Sends settings.CONTENT_SECURITY_POLICY (enforced in production, report-only otherwise)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        exempt = getattr(settings, "CONTENT_SECURITY_POLICY_EXEMPT", ())
        if policy and not any(request.path.startswith(prefix) for prefix in exempt):
            header = (
                "Content-Security-Policy"
                if settings.CONTENT_SECURITY_POLICY_ENFORCED
                else ("Content-Security-Policy-Report-Only")
            )
            response.headers.setdefault(header, policy)
        return response

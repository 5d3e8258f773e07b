"""The UI shell: dashboard per role, health endpoint and error pages."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from common.errors import ErrorCode
from common.http import wants_json
from portal.dashboard import panels_for
from portal.health import health_report
from tenants.roles import PlatformRole
from tenants.selectors import memberships_of, platform_role_of, roles_of


def _health_details_allowed(user) -> bool:
    """Reasons (URIs, error strings) only for a signed-in system admin who passed the second factor."""
    if not getattr(user, "is_authenticated", False) or platform_role_of(user) != PlatformRole.SYSTEM_ADMIN:
        return False
    return not settings.SECOND_FACTOR_REQUIRED or bool(getattr(user, "is_verified", lambda: False)())


@require_GET
@never_cache
def healthz(request):
    report, healthy = health_report(detailed=_health_details_allowed(request.user))
    return JsonResponse(report, status=200 if healthy else 503)


@login_required
def dashboard(request):
    user = request.user
    roles = roles_of(user)
    if not roles:  # signed in through the campus, on no roster yet: whom to ask
        return redirect("identity:welcome")
    context = {
        "roles": sorted(roles),
        "platform_role": platform_role_of(user),
        "memberships": memberships_of(user),
        **panels_for(user, roles),
    }
    return render(request, "portal/dashboard.html", context)


def _error(request, status: int, message: str):
    if wants_json(request):
        codes = {
            400: ErrorCode.INVALID,
            403: ErrorCode.PERMISSION_DENIED,
            404: ErrorCode.NOT_FOUND,
            500: ErrorCode.SERVER_ERROR,
        }
        return JsonResponse({"code": codes[status], "message": message, "detail": {}}, status=status)
    return render(request, "errors/error.html", {"status": status, "message": message}, status=status)


def bad_request(request, exception=None):
    return _error(request, 400, _("请求有误，无法处理。"))


def permission_denied(request, exception=None):
    return _error(request, 403, _("您没有访问此页面的权限。"))


def page_not_found(request, exception=None):
    return _error(request, 404, _("页面不存在，或您无权查看。"))


def server_error(request):
    return _error(request, 500, _("服务器出错了。我们已记录此问题，请稍后再试。"))

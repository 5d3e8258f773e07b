"""Pages of campus sign-in: the CAS round trip (django-cas-ng's views, with our refusal page), logout,
the page of a person who signed in but holds no role yet, and 我的令牌 (API tokens per device)."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_cas_ng import views as cas_views
from django_cas_ng.models import SessionTicket

from audit.security import auth_failure_of
from common.ui import service_call
from tenants.identity import tokens
from tenants.identity.selectors import whom_to_ask
from tenants.selectors import roles_of


class CASLoginView(cas_views.LoginView):
    """Redirect to the CAS server, validate the ticket it sends back, accept its single-logout requests."""

    @method_decorator(csrf_exempt)  # the CAS server's single-logout POST carries no CSRF token
    def dispatch(self, request, *args, **kwargs):
        if not settings.CAS_SERVER_URL:
            raise Http404
        return super().dispatch(request, *args, **kwargs)

    def get(self, request):
        try:
            return super().get(request)
        except PermissionDenied:
            failure = auth_failure_of(request)
            message = failure.get("message") or _("统一身份认证登录失败，请重新登录。")
            return render(request, "identity/sign_in_failed.html", {"message": message}, status=403)

    def successful_login(self, request, next_page):
        if not roles_of(request.user):
            return HttpResponseRedirect(reverse("identity:welcome"))
        return super().successful_login(request, next_page)


class LogoutView(auth_views.LogoutView):
    """Local logout; a CAS session also ends at the CAS server (single logout for the other services)."""

    def post(self, request, *args, **kwargs):
        key = request.session.session_key
        if settings.CAS_SERVER_URL and key and SessionTicket.objects.filter(session_key=key).exists():
            return cas_views.LogoutView.as_view()(request)
        return super().post(request, *args, **kwargs)


@login_required
def welcome(request):
    """Signed in, but on no roster and in no tenant yet: say whom to ask."""
    if roles_of(request.user):
        return HttpResponseRedirect(reverse("dashboard"))
    return render(request, "identity/welcome.html", whom_to_ask(request.user))


@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request):
    """我的令牌: the person's API tokens, one per device: issue one (the key is shown once), revoke any."""
    if request.method == "POST":
        if "revoke" in request.POST:
            done = service_call(
                request,
                lambda: tokens.token_revoke(actor=request.user, token_id=int(request.POST["revoke"] or 0)),
                success=_("令牌已撤销。"),
                next="identity:tokens",
            )
        else:
            # The session passed the second factor where the roles need one (audit's middleware), so
            # the token carries it when the person has one.
            verified = bool(getattr(request.user, "is_verified", lambda: False)())
            done = service_call(
                request,
                lambda: tokens.token_issue(
                    user=request.user, name=request.POST.get("name", ""), second_factor=verified
                ),
                success=lambda issued: _("新令牌（只显示这一次，请立即保存）：%(key)s") % {"key": issued[1]},
                next="identity:tokens",
            )
        return done or HttpResponseRedirect(reverse("identity:tokens"))
    context = {"tokens": tokens.token_list_for(request.user), "hours": settings.API_TOKEN_HOURS}
    return render(request, "identity/tokens.html", context)

"""Pages of tenants. Quotas: the list and the edit form."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from common.ui import service_call
from tenants import forms, permissions, selectors, services
from tenants.models import Quota, User
from tenants.quotas import quota_rows
from tenants.views.base import page as _page
from tenants.views.base import request_tenants as _request_tenants

# --- Quotas --------------------------------------------------------------------------------


@login_required
def quota_list(request):
    user = request.user
    quotas = selectors.quota_list_for(user).order_by("tenant__path", "scope", "id")
    scope = request.GET.get("scope", "")
    if scope in Quota.Scope.values:
        quotas = quotas.filter(scope=scope)
    page = _page(request, quotas)
    rows = quota_rows(page.object_list)
    for row in rows:
        quota = row["quota"]
        row["editable"] = permissions.can_set_quota(user, tenant=quota.tenant, scope=quota.scope)
        row["form"] = (
            forms.LimitsForm(initial_limits=quota.limits(), prefix=f"q{quota.pk}") if row["editable"] else None
        )
    tenants = [t for t in selectors.tenant_list_for(user) if permissions.can_set_quota(user, tenant=t, scope="course")]
    courses = selectors.course_list_for(user).filter(tenant__in=tenants) if tenants else []
    return render(
        request,
        "tenants/quota_list.html",
        {
            "page": page,
            "rows": rows,
            "scope": scope,
            "scopes": Quota.Scope.choices,
            "new_form": forms.LimitsForm(prefix="new"),
            "tenants": tenants,
            "courses": courses,
            "can_request": bool(_request_tenants(user)),
        },
    )


@login_required
@require_POST
def quota_edit(request, pk=None):
    user = request.user
    if pk is not None:
        quota = get_object_or_404(selectors.quota_list_for(user), pk=pk)
        form = forms.LimitsForm(request.POST, prefix=f"q{pk}")
        target = {"tenant": quota.tenant, "course": quota.course, "user": quota.user}
    else:
        form = forms.LimitsForm(request.POST, prefix="new")
        tenant = get_object_or_404(selectors.tenant_list_for(user), slug=request.POST.get("tenant", ""))
        course = user_obj = None
        if request.POST.get("course"):
            course = get_object_or_404(selectors.course_list_for(user), pk=request.POST["course"], tenant=tenant)
        elif request.POST.get("username"):
            user_obj = User.objects.filter(username=request.POST["username"]).first()
            if user_obj is None:
                messages.error(request, _("用户不存在。"))
                return redirect("tenants:quotas")
        target = {"tenant": tenant, "course": course, "user": user_obj}
    if not form.is_valid():
        messages.error(request, _("配额必须是非负数：内存以 GiB 填写，可带小数；其他资源填整数。"))
        return redirect("tenants:quotas")
    return service_call(
        request,
        lambda: services.quota_set(actor=user, limits=form.limits(), **target),
        success=_("配额已保存。"),
        next="tenants:quotas",
    )

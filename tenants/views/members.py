"""Pages of tenants. The tenant tree and its members."""

import re

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from common.ui import service_call
from tenants import forms, permissions, selectors, services
from tenants.models import User
from tenants.roles import TenantRole
from tenants.views.base import page as _page

# --- Tenant tree and members -----------------------------------------------------------------


@login_required
def tenant_tree(request):
    user = request.user
    tenants = list(selectors.tenant_list_for(user).select_related("parent").order_by("path"))
    if not tenants:
        raise Http404
    form = forms.TenantForm(request.POST or None)
    if request.method == "POST":
        parent = next((t for t in tenants if t.slug == request.POST.get("parent")), None)
        if form.is_valid() and (
            done := service_call(
                request,
                lambda: services.tenant_create(actor=user, parent=parent, **form.cleaned_data),
                success=_("已创建租户“%(name)s”。") % {"name": form.cleaned_data["name_zh"]},
                next="tenants:tree",
                form=form,
            )
        ):
            return done
    rows = [
        {
            "tenant": t,
            "indent": t.depth,
            "can_add_child": permissions.can_create_child(user, t),
            "can_manage": permissions.can_grant_roles(user, t) or permissions.holds_role_over(user, t, "auditor"),
            "can_toggle": permissions.can_deactivate_tenant(user, t),
        }
        for t in tenants
    ]
    return render(
        request,
        "tenants/tree.html",
        {"rows": rows, "form": form, "can_create_root": permissions.can_create_child(user, None)},
    )


@login_required
@require_POST
def tenant_toggle(request, slug):
    tenant = get_object_or_404(selectors.tenant_list_for(request.user), slug=slug)
    switched = _("已停用“%(name)s”。") if tenant.is_active else _("已启用“%(name)s”。")
    return service_call(
        request,
        lambda: services.tenant_update(actor=request.user, tenant=tenant, is_active=not tenant.is_active),
        success=switched % {"name": tenant.name},
        next="tenants:tree",
    )


@login_required
def members(request, slug):
    tenant = get_object_or_404(selectors.tenant_list_for(request.user), slug=slug)
    visible = selectors.membership_list_for(request.user).filter(tenant=tenant)
    can_grant = permissions.can_grant_roles(request.user, tenant)
    if not can_grant and not visible.exists() and not permissions.holds_role_over(request.user, tenant, "auditor"):
        raise Http404
    form = forms.MembershipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        target = User.objects.filter(username=form.cleaned_data["username"], is_active=True).first()
        if target is None:
            form.add_error("username", _("用户不存在。"))
        elif done := service_call(
            request,
            lambda: services.membership_grant(
                actor=request.user, user=target, tenant=tenant, role=form.cleaned_data["role"]
            ),
            success=_("已授予 %(user)s 角色。") % {"user": target.get_full_name()},
            next=reverse("tenants:members", args=[slug]),
            form=form,
        ):
            return done
    query = request.GET.get("q", "").strip()
    if query:
        visible = visible.filter(Q(user__username__icontains=query) | Q(user__display_name__icontains=query))
    role = request.GET.get("role", "")
    if role in TenantRole.values:
        visible = visible.filter(role=role)
    return render(
        request,
        "tenants/members.html",
        {
            "tenant": tenant,
            "page": _page(request, sorted(visible, key=_member_order)),
            "form": form,
            "can_grant": can_grant,
            "query": query,
            "role": role,
            "roles": TenantRole.choices,
        },
    )


# Who a member list shows first: those who run the tenant, then teachers, then the rest.
_ROLE_RANK = {TenantRole.TENANT_ADMIN: 0, TenantRole.TEACHER: 1, TenantRole.FINANCE: 2, TenantRole.AUDITOR: 3}


def _natural(text: str) -> tuple:
    """学生2 before 学生10: digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def _member_order(membership) -> tuple:
    user = membership.user
    return (_ROLE_RANK.get(membership.role, 9), _natural(user.get_full_name()), _natural(user.username))


@login_required
@require_POST
def member_revoke(request, pk):
    membership = get_object_or_404(selectors.membership_list_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.membership_revoke(actor=request.user, membership=membership),
        success=_("已撤销该角色。"),
        next=reverse("tenants:members", args=[membership.tenant.slug]),
    )

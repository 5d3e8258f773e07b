"""Pages of tenants. Requests: the list, a request and its steps, the approval policy, and the request forms."""

from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from common.ui import service_call
from tenants import forms, permissions, selectors, services
from tenants.approvals import can_retry
from tenants.models import RESOURCE_LABELS, RESOURCES, ApprovalStep, amount_label
from tenants.policies import RULE_MAXIMA, policy_for
from tenants.roles import PlatformRole, TenantRole
from tenants.views.base import page as _page
from tenants.views.base import request_tenants as _request_tenants

# --- Requests ------------------------------------------------------------------------------


def _with_steps(queryset):
    steps = Prefetch("steps", queryset=ApprovalStep.objects.select_related("decided_by").order_by("order"))
    return queryset.prefetch_related(steps)


@login_required
def request_list(request):
    """The approver's queue and the requester's history, with filters."""
    user = request.user
    tab = request.GET.get("tab") or ("queue" if _is_approver(user) else "mine")
    if tab == "queue":
        requests = selectors.request_queue_for(user)
    elif tab == "all":
        requests = selectors.request_list_for(user)
    else:
        tab = "mine"
        requests = selectors.request_list_for(user).filter(requester=user)
    filters = forms.RequestFilterForm(request.GET or None)
    if filters.is_valid():
        data = filters.cleaned_data
        if data["state"]:
            requests = requests.filter(state=data["state"])
        if data["kind"]:
            requests = requests.filter(kind=data["kind"])
        if data["q"]:
            requests = requests.filter(Q(title__icontains=data["q"]) | Q(requester__display_name__icontains=data["q"]))
    return render(
        request,
        "tenants/request_list.html",
        {
            "page": _page(request, _with_steps(requests)),
            "tab": tab,
            "filters": filters,
            "is_approver": _is_approver(user),
            "can_request": bool(_request_tenants(user)),
            "querystring": _querystring(request, exclude="page"),
        },
    )


def _querystring(request, *, exclude: str) -> str:
    params = request.GET.copy()
    params.pop(exclude, None)
    return params.urlencode()


def _is_approver(user) -> bool:
    return selectors.platform_role_of(user) == PlatformRole.SYSTEM_ADMIN or selectors.has_role(
        user, TenantRole.TENANT_ADMIN
    )


@login_required
def request_detail(request, pk):
    user = request.user
    target = get_object_or_404(_with_steps(selectors.request_list_for(user)), pk=pk)
    step = next((s for s in target.steps.all() if s.state == ApprovalStep.State.PENDING), None)
    return render(
        request,
        "tenants/request_detail.html",
        {
            "req": target,
            "amounts": [
                (RESOURCE_LABELS[n], amount_label(n, getattr(target, n))) for n in RESOURCES if getattr(target, n)
            ],
            "can_decide": permissions.can_decide_step(user, target, step),
            "can_cancel": target.requester_id == user.pk and target.state == target.State.PENDING,
            "can_retry": can_retry(user, target),
            "approve_form": forms.ApproveForm(),
            "reject_form": forms.RejectForm(),
        },
    )


@login_required
@require_POST
def request_action(request, pk, verb):
    user = request.user
    target = get_object_or_404(selectors.request_list_for(user), pk=pk)
    here = reverse("tenants:request", args=[pk])
    if verb == "approve":
        form = forms.ApproveForm(request.POST)
        form.is_valid()
        call, done = partial(services.request_approve, comment=form.cleaned_data.get("comment", "")), _("已批准。")
    elif verb == "reject":
        form = forms.RejectForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("驳回时请说明原因。"))
            return redirect(here)
        call, done = partial(services.request_reject, reason=form.cleaned_data["reason"]), _("已驳回。")
    elif verb == "cancel":
        call, done = services.request_cancel, _("申请已撤回。")
    elif verb == "retry":
        call, done = services.request_retry, _("已重新开始交付。")
    else:
        raise Http404
    return service_call(request, lambda: call(actor=user, request=target), success=done, next=here)


# --- Approval policy -------------------------------------------------------------------------


@login_required
def policy(request, slug):
    """The tenant's approval policy (its own or inherited): steps and auto-approval rules."""
    user = request.user
    tenant = get_object_or_404(selectors.tenant_list_for(user), slug=slug)
    can_edit = permissions.manages_tenant(user, tenant) or permissions.is_platform(user, PlatformRole.SYSTEM_ADMIN)
    effective = policy_for(tenant)
    own = effective if effective and effective.tenant_id == tenant.pk else None
    steps = [
        {k: getattr(s, k) for k in ("approver_role", "above_desktops", "above_vcpu", "above_gpus", "above_cost")}
        for s in (effective.steps.all() if effective else [])
    ]
    rules = [
        {k: getattr(r, k) for k in ("name", "kind", *RULE_MAXIMA)} for r in (effective.rules.all() if effective else [])
    ]
    name_form = forms.PolicyForm(request.POST or None, initial={"name": effective.name if effective else ""})
    step_set = forms.PolicyStepFormSet(request.POST or None, initial=steps, prefix="step")
    rule_set = forms.AutoRuleFormSet(request.POST or None, initial=rules, prefix="rule")
    if request.method == "POST":
        if not can_edit:
            raise Http404
        if name_form.is_valid() and step_set.is_valid() and rule_set.is_valid():
            kept = {"steps": _kept(step_set, "approver_role"), "rules": _kept(rule_set, "name")}
            done = service_call(
                request,
                lambda: services.policy_set(actor=user, tenant=tenant, name=name_form.cleaned_data["name"], **kept),
                success=_("审批策略已保存。"),
                next=reverse("tenants:policy", args=[slug]),
                back=None,
            )
            if done:
                return done
    return render(
        request,
        "tenants/policy.html",
        {
            "tenant": tenant,
            "effective": effective,
            "own": own,
            "can_edit": can_edit,
            "name_form": name_form,
            "step_set": step_set,
            "rule_set": rule_set,
        },
    )


def _kept(formset, required: str) -> list[dict]:
    """The formset's filled-in rows (``required`` set) not marked for deletion, without the DELETE flag."""
    rows = [f.cleaned_data for f in formset.forms]
    return [{k: v for k, v in r.items() if k != "DELETE"} for r in rows if r.get(required) and not r.get("DELETE")]


# --- Other requests: personal desktop, GPU environment, quota increase --------------------------


@login_required
def request_new(request):
    user = request.user
    tenants = _request_tenants(user)
    if not tenants:
        raise Http404
    kind = request.GET.get("kind", "quota_increase")
    can_ask_quota = any(permissions.can_request(user, t, "quota_increase") for t in tenants)
    if kind in ("personal_desktop", "gpu_environment") or not can_ask_quota:
        # A desktop is asked for with its image and flavor, on the portal's desktop request page.
        return redirect(f"{reverse('request-desktop')}?kind={kind if kind != 'quota_increase' else ''}")
    courses = [c for c in selectors.course_list_for(user) if permissions.can_manage_course(user, c)]
    initial = {"kind": "quota_increase", "course": request.GET.get("course")}
    form = forms.RequestForm(request.POST or None, courses=courses, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        course = next((c for c in courses if c.pk == data["course"]), None)
        chosen = request.POST.get("tenant") or (tenants[0].slug if len(tenants) == 1 else "")
        tenant = course.tenant if course else next((t for t in tenants if t.slug == chosen), None)
        if tenant is None:
            form.add_error(None, _("请选择租户。"))
        elif done := service_call(
            request,
            lambda: services.request_submit(
                actor=user,
                tenant=tenant,
                kind=data["kind"],
                title=data["title"],
                course=course,
                amounts=services.ResourceAmounts(**form.amounts()),
                reason=data["reason"],
            ),
            success=_("申请已提交。"),
            next=lambda created: reverse("tenants:request", args=[created.pk]),
            form=form,
        ):
            return done
    return render(request, "tenants/request_new.html", {"form": form, "tenants": tenants})

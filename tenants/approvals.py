"""Approval workflows: submit, approve, reject, cancel, fulfil, fail — the named transitions of a request.

A request goes through the steps of its tenant's policy (the nearest policy up the tree;
one department-admin step when there is none). An auto-approval rule whose maxima it stays
within approves it at submit, recorded as "approved automatically by rule X". At the final
approval the resources are reserved against the quotas, and the fulfiller that compute
registered (tenants.hooks) is called once the transaction commits.
"""

import logging
from decimal import Decimal

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Forbidden, InvalidInput, InvalidTransition
from tenants import hooks, permissions
from tenants.errors import TenantsError
from tenants.locks import request_lock
from tenants.models import (
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    ApproverRole,
    AutoApprovalRule,
    Course,
    Membership,
    PlatformAssignment,
    PolicyStep,
    Quota,
    RequestKind,
    Tenant,
    User,
)
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_add, quota_check, quota_release, quota_reserve
from tenants.roles import PlatformRole, TenantRole

log = logging.getLogger(__name__)
State = ApprovalRequest.State

# transition -> the states it may leave from. Anything else is a 409 invalid_transition.
TRANSITIONS = {
    "approve": {State.PENDING},
    "reject": {State.PENDING},
    "cancel": {State.PENDING},
    "fulfil": {State.APPROVED},
    "fail": {State.APPROVED},
}


def _allow(request: ApprovalRequest, transition: str) -> None:
    if request.state not in TRANSITIONS[transition]:
        raise InvalidTransition(
            _("申请当前为“%(state)s”，不能执行该操作。") % {"state": request.get_state_display()},
            detail={"state": request.state, "transition": transition},
        )


def policy_for(tenant: Tenant) -> ApprovalPolicy | None:
    """The tenant's own policy, or the nearest one up the tree."""
    policies = ApprovalPolicy.objects.filter(tenant__path__in=tenant.ancestor_paths()).select_related("tenant")
    return max(policies, key=lambda p: len(p.tenant.path), default=None)


def _step_applies(step: PolicyStep, amounts: ResourceAmounts, cost: Decimal | None) -> bool:
    thresholds = [
        (step.above_desktops, amounts.desktops),
        (step.above_vcpu, amounts.vcpu),
        (step.above_gpus, amounts.gpus),
        (step.above_cost, cost),
    ]
    set_thresholds = [(limit, value) for limit, value in thresholds if limit is not None]
    if not set_thresholds:
        return True
    return any(value is not None and value > limit for limit, value in set_thresholds)


def _matching_rule(policy: ApprovalPolicy | None, kind: str, amounts: ResourceAmounts) -> AutoApprovalRule | None:
    if policy is None:
        return None
    for rule in policy.rules.filter(is_active=True).filter(Q(kind="") | Q(kind=kind)):
        if (
            amounts.desktops <= rule.max_desktops
            and amounts.vcpu <= rule.max_vcpu
            and amounts.ram_gib <= rule.max_ram_gib
            and amounts.gpus <= rule.max_gpus
        ):
            return rule
    return None


def _quota_scope(kind: str, course: Course | None, requester) -> dict:
    """Which quotas a request is held against: the course's for course desktops, the requester's otherwise."""
    if course is not None:
        return {"course": course}
    if kind in (RequestKind.PERSONAL_DESKTOP, RequestKind.GPU_ENVIRONMENT):
        return {"user": requester}
    return {}


def request_submit(
    *,
    actor: User | None,
    tenant: Tenant,
    kind: str,
    title: str,
    amounts: ResourceAmounts,
    course: Course | None = None,
    payload: dict | None = None,
    estimated_cost: Decimal | None = None,
    reason: str = "",
) -> ApprovalRequest:
    """Submit a request. Refused at once (409 quota_exceeded) when it would not fit the quotas."""
    if kind not in RequestKind.values:
        raise InvalidInput(_("未知申请类型：%(kind)s") % {"kind": kind}, code=TenantsError.UNKNOWN_REQUEST_KIND)
    if not permissions.can_request(actor, tenant, kind):
        raise Forbidden(_("您不能在该租户提交此类申请。"), code=TenantsError.REQUEST_FORBIDDEN)
    if kind == RequestKind.COURSE_DESKTOPS and course is None:
        raise InvalidInput(_("课程桌面申请必须选择课程。"), code=TenantsError.COURSE_REQUIRED)
    if course is not None:
        if course.tenant_id != tenant.pk:
            raise InvalidInput(_("课程不属于该租户。"), code=TenantsError.COURSE_NOT_IN_TENANT)
        if not permissions.can_manage_course(actor, course):
            raise Forbidden(_("您不是该课程的教师。"), code=TenantsError.REQUEST_FORBIDDEN)
    if amounts.is_zero():
        raise InvalidInput(_("申请的资源数量不能全为 0。"), code=TenantsError.EMPTY_REQUEST)
    if not (title or "").strip():
        raise InvalidInput(_("请填写申请标题。"), code=TenantsError.TITLE_REQUIRED)
    scope = _quota_scope(kind, course, actor)
    if kind != RequestKind.QUOTA_INCREASE:
        shortfalls = quota_check(tenant=tenant, amounts=amounts, **scope)
        if shortfalls:
            raise QuotaExceeded(shortfalls)

    policy = policy_for(tenant)
    with transaction.atomic():
        request = ApprovalRequest.objects.create(
            tenant=tenant,
            course=course,
            requester=actor,
            kind=kind,
            title=title.strip()[:200],
            payload=payload or {},
            estimated_cost=estimated_cost,
            reason=reason,
            **amounts.as_dict(),
        )
        steps = [s for s in (policy.steps.all() if policy else []) if _step_applies(s, amounts, estimated_cost)]
        if not steps:
            steps = [PolicyStep(order=1, approver_role=ApproverRole.TENANT_ADMIN)]
        ApprovalStep.objects.bulk_create(
            ApprovalStep(request=request, order=i, approver_role=s.approver_role) for i, s in enumerate(steps, start=1)
        )
        event_record(
            action=Action.REQUEST_SUBMITTED,
            actor=actor,
            target=request,
            tenant=tenant,
            detail={"kind": kind, "amounts": amounts.as_dict(), "steps": [s.approver_role for s in steps]},
        )
        rule = _matching_rule(policy, kind, amounts)
        if rule is not None:
            comment = _("由规则“%(rule)s”自动批准") % {"rule": rule.name}
            request.steps.update(state=ApprovalStep.State.APPROVED, decided_at=timezone.now(), comment=comment)
            request.auto_rule = rule.name
            _finalise_approval(request, actor=None, comment=comment)
        else:
            _notify_approvers(request)
    return request


def _finalise_approval(request: ApprovalRequest, *, actor, comment: str) -> None:
    """Last step approved: hold the resources, mark approved, fulfil after commit."""
    amounts = ResourceAmounts.of(request)
    if request.kind == RequestKind.QUOTA_INCREASE:
        target = (
            Quota.objects.filter(course=request.course).first()
            if request.course
            else Quota.objects.filter(key=f"tenant:{request.tenant_id}").first()
        )
        if target is not None:
            # Decided by the policy's approvers; the parent's bound still applies inside quota_add.
            quota_add(actor=None, quota=target, amounts=amounts)
    else:
        request.reservation = quota_reserve(
            tenant=request.tenant,
            amounts=amounts,
            reason=_("申请 #%(id)s：%(title)s") % {"id": request.pk, "title": request.title},
            actor=actor,
            **_quota_scope(request.kind, request.course, request.requester),
        )
    request.state = State.APPROVED
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_at", "reservation", "auto_rule", "updated_at"])
    event_record(
        action=Action.REQUEST_APPROVED,
        actor=actor,
        target=request,
        tenant=request.tenant,
        reason=comment,
        detail={"final": True, "auto_rule": request.auto_rule},
    )
    pk = request.pk
    transaction.on_commit(lambda: _fulfil(pk))
    _notify_requester(request, _("您的申请已批准：%(title)s") % {"title": request.title}, comment)


def _pending_step(request: ApprovalRequest) -> ApprovalStep | None:
    return request.steps.filter(state=ApprovalStep.State.PENDING).order_by("order").first()


def request_approve(*, actor: User | None, request: ApprovalRequest, comment: str = "") -> ApprovalRequest:
    """Approve the current step; after the last one, reserve the quotas and start fulfilment."""
    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "approve")
        step = _pending_step(request)
        if not permissions.can_decide_step(actor, request, step):
            raise Forbidden(_("这一步不由您审批。"), code=TenantsError.NOT_YOUR_STEP)
        step.state = ApprovalStep.State.APPROVED
        step.decided_by = actor
        step.decided_at = timezone.now()
        step.comment = comment
        step.save(update_fields=["state", "decided_by", "decided_at", "comment"])
        if _pending_step(request) is None:
            _finalise_approval(request, actor=actor, comment=comment)
        else:
            event_record(
                action=Action.REQUEST_APPROVED,
                actor=actor,
                target=request,
                tenant=request.tenant,
                reason=comment,
                detail={"final": False, "step": step.order},
            )
            _notify_approvers(request)
    return request


def request_reject(*, actor: User | None, request: ApprovalRequest, reason: str) -> ApprovalRequest:
    """Reject at the current step. A rejection always says why."""
    if not (reason or "").strip():
        raise InvalidInput(_("驳回时请说明原因。"), code=TenantsError.REASON_REQUIRED)
    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "reject")
        step = _pending_step(request)
        if not permissions.can_decide_step(actor, request, step):
            raise Forbidden(_("这一步不由您审批。"), code=TenantsError.NOT_YOUR_STEP)
        now = timezone.now()
        step.state = ApprovalStep.State.REJECTED
        step.decided_by, step.decided_at, step.comment = actor, now, reason.strip()
        step.save(update_fields=["state", "decided_by", "decided_at", "comment"])
        request.steps.filter(state=ApprovalStep.State.PENDING).update(state=ApprovalStep.State.SKIPPED)
        request.state = State.REJECTED
        request.rejection_reason = reason.strip()
        request.decided_at = now
        request.save(update_fields=["state", "rejection_reason", "decided_at", "updated_at"])
        event_record(action=Action.REQUEST_REJECTED, actor=actor, target=request, tenant=request.tenant, reason=reason)
        _notify_requester(request, _("您的申请被驳回：%(title)s") % {"title": request.title}, reason)
    return request


def request_cancel(*, actor: User | None, request: ApprovalRequest) -> ApprovalRequest:
    """The requester withdraws a request that is still pending."""
    with transaction.atomic():
        request = request_lock(request.pk)
        if request.requester_id != actor.pk:
            raise Forbidden(_("只有申请人可以撤回申请。"), code=TenantsError.NOT_REQUESTER)
        _allow(request, "cancel")
        request.steps.filter(state=ApprovalStep.State.PENDING).update(state=ApprovalStep.State.SKIPPED)
        request.state = State.CANCELLED
        request.decided_at = timezone.now()
        request.save(update_fields=["state", "decided_at", "updated_at"])
        event_record(action=Action.REQUEST_CANCELLED, actor=actor, target=request, tenant=request.tenant)
    return request


def request_fulfil(
    *, request: ApprovalRequest, detail: dict | None = None, actor: User | None = None
) -> ApprovalRequest:
    """Called by the fulfilling app when everything asked for exists: the reservation becomes usage."""
    from tenants.quotas import quota_commit

    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "fulfil")
        if request.reservation_id:
            quota_commit(reservation=request.reservation, actor=actor)
        request.state = State.FULFILLED
        request.fulfilment_detail = detail or {}
        request.save(update_fields=["state", "fulfilment_detail", "updated_at"])
        event_record(action=Action.REQUEST_FULFILLED, actor=actor, target=request, tenant=request.tenant, detail=detail)
    return request


def request_fail(*, request: ApprovalRequest, reason: str, actor: User | None = None) -> ApprovalRequest:
    """Fulfilment failed for good: the reservation is released and the requester is told why."""
    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "fail")
        if request.reservation_id:
            quota_release(reservation=request.reservation, actor=actor)
        request.state = State.FAILED
        request.fulfilment_detail = {"error": str(reason)[:1000]}
        request.save(update_fields=["state", "fulfilment_detail", "updated_at"])
        event_record(
            action=Action.REQUEST_FAILED,
            actor=actor,
            target=request,
            tenant=request.tenant,
            result="failure",
            reason=reason,
        )
        _notify_requester(request, _("您的申请交付失败：%(title)s") % {"title": request.title}, str(reason))
    return request


def _fulfil(request_pk: int) -> None:
    request = ApprovalRequest.objects.select_related("tenant", "course", "requester", "reservation").get(pk=request_pk)
    fulfiller = hooks.fulfiller_for(request.kind)
    if fulfiller is None or request.state != State.APPROVED:
        return
    try:
        fulfiller(request)
    except Exception as exc:  # noqa: BLE001 - any failure to start fulfilment is reported on the request
        log.exception("fulfiller for %s failed on request %s", request.kind, request.pk)
        request_fail(request=request, reason=_("无法开始交付：%(error)s") % {"error": exc})


# --- Policies -------------------------------------------------------------------------------


def policy_set(
    *, actor: User | None, tenant: Tenant, name: str, steps: list[dict], rules: list[dict]
) -> ApprovalPolicy:
    """Replace a tenant's policy: `steps` [{approver_role, above_desktops, ...}], `rules` [{name, kind, max_*}]."""
    if actor is not None and not (
        permissions.manages_tenant(actor, tenant) or permissions.is_platform(actor, PlatformRole.SYSTEM_ADMIN)
    ):
        raise Forbidden(_("您不能修改该租户的审批策略。"), code=TenantsError.POLICY_FORBIDDEN)
    if not steps:
        raise InvalidInput(_("审批策略至少需要一个步骤。"), code=TenantsError.POLICY_NEEDS_STEP)
    for step in steps:
        if step.get("approver_role") not in ApproverRole.values:
            raise InvalidInput(
                _("未知审批人：%(role)s") % {"role": step.get("approver_role")}, code=TenantsError.UNKNOWN_ROLE
            )
    with transaction.atomic():
        policy, _created = ApprovalPolicy.objects.update_or_create(tenant=tenant, defaults={"name": name})
        policy.steps.all().delete()
        policy.rules.all().delete()
        PolicyStep.objects.bulk_create(PolicyStep(policy=policy, order=i, **s) for i, s in enumerate(steps, start=1))
        AutoApprovalRule.objects.bulk_create(AutoApprovalRule(policy=policy, **r) for r in rules)
        event_record(
            action=Action.APPROVAL_POLICY_CHANGED,
            actor=actor,
            target=policy,
            tenant=tenant,
            detail={"steps": [s["approver_role"] for s in steps], "rules": [r["name"] for r in rules]},
        )
    return policy


# --- Email ----------------------------------------------------------------------------------


def _approver_emails(request: ApprovalRequest) -> list[str]:
    step = _pending_step(request)
    if step is None:
        return []
    if step.approver_role == ApproverRole.SYSTEM_ADMIN:
        emails = PlatformAssignment.objects.filter(role=ApproverRole.SYSTEM_ADMIN).values_list("user__email", flat=True)
    else:
        emails = Membership.objects.filter(
            role=TenantRole.TENANT_ADMIN, tenant__path__in=request.tenant.ancestor_paths()
        ).values_list("user__email", flat=True)
    return sorted({e for e in emails if e})


def _send_later(subject: str, body: str, recipients: list[str]) -> None:
    if recipients:
        transaction.on_commit(
            lambda: send_mail(subject, body, None, recipients, fail_silently=True)  # the console backend by default
        )


def _notify_approvers(request: ApprovalRequest) -> None:
    _send_later(
        _("待审批：%(title)s") % {"title": request.title},
        _("%(who)s 提交了申请“%(title)s”（#%(id)s），请到审批队列处理。")
        % {"who": request.requester.get_full_name(), "title": request.title, "id": request.pk},
        _approver_emails(request),
    )


def _notify_requester(request: ApprovalRequest, subject: str, comment: str) -> None:
    body = subject + ("\n\n" + comment if comment else "")
    _send_later(subject, body, [request.requester.email] if request.requester.email else [])

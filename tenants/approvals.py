"""Approval workflows: submit, approve, reject, cancel, and fulfilment's hand-over, report, fail, retry.

A request goes through the steps of its tenant's policy (the nearest policy up the tree,
tenants.policies; one department-admin step when there is none). What a request takes is
planned by the app that fulfils its kind (tenants.hooks: a flavor times the seats it will
make), never taken from amounts the requester typed; the quotas, the steps and the
auto-approval rules all look at those planned amounts. An auto-approval rule whose maxima
it stays within approves it at submit, recorded as "approved automatically by rule X". A
quota increase is never auto-approved and always ends with a step decided above the tenant
whose quota grows.

At the final approval the resources are reserved against the quotas and the fulfiller is
called once the transaction commits. A request is delivered (fulfilled) only when what it
asked for runs: the fulfiller reports progress, a partial or failed fulfilment keeps its
reasons on the request, and the requester may retry it.
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
    RESOURCES,
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
    Reservation,
    Tenant,
    User,
)
from tenants.policies import policy_for, policy_set
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_add, quota_check, quota_release, quota_reserve
from tenants.roles import TenantRole

log = logging.getLogger(__name__)
State = ApprovalRequest.State

# transition -> the states it may leave from. Anything else is a 409 invalid_transition.
TRANSITIONS = {
    "approve": {State.PENDING},
    "reject": {State.PENDING},
    "cancel": {State.PENDING},
    "hand_over": {State.APPROVED},
    # A retry made on the resources themselves (the pool page) may turn a failed request around.
    "report": {State.APPROVED, State.PARTIAL, State.FAILED},
    "fulfil": {State.APPROVED, State.PARTIAL, State.FAILED},
    "fail": {State.APPROVED, State.PARTIAL},
    "retry": {State.PARTIAL, State.FAILED},
}

__all__ = [
    "policy_for",
    "policy_set",
    "request_approve",
    "request_cancel",
    "request_fail",
    "request_fulfil",
    "request_hand_over",
    "request_reject",
    "request_report",
    "request_retry",
    "request_submit",
]


def _allow(request: ApprovalRequest, transition: str) -> None:
    if request.state not in TRANSITIONS[transition]:
        raise InvalidTransition(
            _("申请当前为“%(state)s”，不能执行该操作。") % {"state": request.get_state_display()},
            detail={"state": request.state, "transition": transition},
        )


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
    """The auto-approval rule every planned amount stays within. Never one for a quota increase."""
    if policy is None or kind == RequestKind.QUOTA_INCREASE:
        return None
    for rule in policy.rules.filter(is_active=True).filter(Q(kind="") | Q(kind=kind)):
        if all(getattr(amounts, name) <= getattr(rule, f"max_{name}") for name in RESOURCES):
            return rule
    return None


def _quota_scope(kind: str, course: Course | None, requester) -> dict:
    """Which quotas a request is held against: the course's for course desktops, the requester's otherwise."""
    if course is not None:
        return {"course": course}
    if kind in (RequestKind.PERSONAL_DESKTOP, RequestKind.GPU_ENVIRONMENT):
        return {"user": requester}
    return {}


def _check_submit(*, actor, tenant: Tenant, kind: str, course: Course | None, title: str) -> None:
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
    if not (title or "").strip():
        raise InvalidInput(_("请填写申请标题。"), code=TenantsError.TITLE_REQUIRED)


def _planned(*, actor, tenant, kind, course, amounts, payload) -> tuple[ResourceAmounts, dict]:
    """What fulfilment will really take, as the fulfilling app plans it from the payload (a flavor
    times the seats it will make); the typed amounts count only for a quota increase."""
    planner = hooks.planner_for(kind)
    if planner is None:
        return amounts, payload or {}
    return planner(tenant=tenant, course=course, requester=actor, payload=dict(payload or {}))


def _steps_for(request: ApprovalRequest, policy, amounts: ResourceAmounts, cost) -> list[PolicyStep]:
    steps = [s for s in (policy.steps.all() if policy else []) if _step_applies(s, amounts, cost)]
    if not steps:
        steps = [PolicyStep(order=1, approver_role=ApproverRole.TENANT_ADMIN)]
    if request.kind == RequestKind.QUOTA_INCREASE:
        # The quota grows only by the decision of someone above it: the tenant's own admin for a
        # course's quota, an admin above the tenant (the system admin at the top) for the tenant's.
        above = ApproverRole.TENANT_ADMIN if request.course_id else ApproverRole.PARENT_ADMIN
        if steps[-1].approver_role != above:
            steps.append(PolicyStep(order=len(steps) + 1, approver_role=above))
    return steps


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
    _check_submit(actor=actor, tenant=tenant, kind=kind, course=course, title=title)
    amounts, payload = _planned(actor=actor, tenant=tenant, kind=kind, course=course, amounts=amounts, payload=payload)
    if amounts.is_zero() and not payload.get("change"):
        raise InvalidInput(_("申请的资源数量不能全为 0。"), code=TenantsError.EMPTY_REQUEST)
    if kind != RequestKind.QUOTA_INCREASE:
        shortfalls = quota_check(tenant=tenant, amounts=amounts, **_quota_scope(kind, course, actor))
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
            payload=payload,
            estimated_cost=estimated_cost,
            reason=reason,
            **amounts.as_dict(),
        )
        steps = _steps_for(request, policy, amounts, estimated_cost)
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
        _auto_approve_or_notify(request, policy, amounts)
    return request


def _auto_approve_or_notify(request: ApprovalRequest, policy, amounts: ResourceAmounts) -> None:
    """A rule's maxima approve it; so does a change that takes no more than is held already."""
    rule = _matching_rule(policy, request.kind, amounts)
    if rule is None and not amounts.is_zero():
        _notify_approvers(request)
        return
    if rule is None:
        comment = _("不需要更多配额，无需审批")
        request.steps.update(state=ApprovalStep.State.APPROVED, decided_at=timezone.now(), comment=comment)
        _finalise_approval(request, actor=None, comment=comment)
        return
    comment = _("由规则“%(rule)s”自动批准") % {"rule": rule.name}
    request.steps.update(state=ApprovalStep.State.APPROVED, decided_at=timezone.now(), comment=comment)
    request.auto_rule = rule.name
    _finalise_approval(request, actor=None, comment=comment)


def _quota_increase_apply(request: ApprovalRequest, amounts: ResourceAmounts) -> None:
    target = (
        Quota.objects.filter(course=request.course).first()
        if request.course
        else Quota.objects.filter(key=f"tenant:{request.tenant_id}").first()
    )
    if target is not None:
        # Decided by the approvers above it; the parent's bound still applies inside quota_add.
        quota_add(actor=None, quota=target, amounts=amounts)


def _finalise_approval(request: ApprovalRequest, *, actor, comment: str) -> None:
    """Last step approved: hold the resources, mark approved, fulfil after commit. A quota
    increase is applied at once: it is delivered when approved."""
    amounts = ResourceAmounts.of(request)
    if request.kind == RequestKind.QUOTA_INCREASE:
        _quota_increase_apply(request, amounts)
        request.state = State.FULFILLED
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
    if request.state == State.APPROVED:
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


# --- Fulfilment ------------------------------------------------------------------------------


def _reservation_held(request: ApprovalRequest) -> Reservation | None:
    reservation = request.reservation
    return reservation if reservation is not None and reservation.state == Reservation.State.RESERVED else None


def request_hand_over(*, request: ApprovalRequest, detail: dict | None = None) -> ApprovalRequest:
    """The fulfiller is making the resources, each of which holds its own quota: the request's
    reservation is released (not to count twice). The request stays approved until it is reported
    delivered; ``detail`` (which pool, which desktop) is kept for the request page."""
    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "hand_over")
        held = _reservation_held(request)
        if held is not None:
            quota_release(reservation=held)
        request.fulfilment_detail = {**(request.fulfilment_detail or {}), **(detail or {}), "handed_over": True}
        request.save(update_fields=["fulfilment_detail", "updated_at"])
    return request


def request_fulfil(
    *, request: ApprovalRequest, detail: dict | None = None, actor: User | None = None
) -> ApprovalRequest:
    """Everything asked for runs: delivered. A reservation still held becomes usage."""
    from tenants.quotas import quota_commit

    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "fulfil")
        held = _reservation_held(request)
        if held is not None:
            quota_commit(reservation=held, actor=actor)
        request.state = State.FULFILLED
        request.fulfilment_detail = {**(request.fulfilment_detail or {}), **(detail or {})}
        request.fulfilment_detail.pop("failures", None)
        request.save(update_fields=["state", "fulfilment_detail", "updated_at"])
        event_record(action=Action.REQUEST_FULFILLED, actor=actor, target=request, tenant=request.tenant, detail=detail)
    return request


def _release_and_fail(request: ApprovalRequest, reason: str, detail: dict, actor) -> None:
    held = _reservation_held(request)
    if held is not None:
        quota_release(reservation=held, actor=actor)
    request.state = State.FAILED
    request.fulfilment_detail = {**(request.fulfilment_detail or {}), **detail, "error": str(reason)[:1000]}
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


def request_fail(
    *, request: ApprovalRequest, reason: str, actor: User | None = None, detail: dict | None = None
) -> ApprovalRequest:
    """Fulfilment failed for good: the reservation is released and the requester is told why."""
    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "fail")
        _release_and_fail(request, reason, detail or {}, actor)
    return request


def _failure_text(failures: list[dict]) -> str:
    reasons = sorted({f.get("error") or _("未知原因") for f in failures})
    return "；".join(reasons)[:1000]


def request_report(
    *, request: ApprovalRequest, ready: int, failures: list[dict], pending: int = 0, detail: dict | None = None
) -> ApprovalRequest:
    """The fulfiller's progress: ``ready`` things run, ``failures`` [{"name", "error"}] did not,
    ``pending`` are still being made. Nothing pending: delivered when none failed, failed (the
    requester told why) when none runs, partly delivered otherwise; the reasons stay on the request."""
    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "report")
        progress = {**(detail or {}), "ready": ready, "pending": pending, "failures": failures[:100]}
        if pending or (request.state == State.PARTIAL and ready and failures):
            request.fulfilment_detail = {**(request.fulfilment_detail or {}), **progress}
            request.save(update_fields=["fulfilment_detail", "updated_at"])
        elif not failures:
            request = request_fulfil(request=request, detail=progress)
        elif not ready:
            if request.state != State.FAILED:
                _release_and_fail(request, _failure_text(failures), progress, None)
        else:
            _partly_delivered(request, progress)
    return request


def _partly_delivered(request: ApprovalRequest, progress: dict) -> None:
    request.state = State.PARTIAL
    request.fulfilment_detail = {**(request.fulfilment_detail or {}), **progress}
    request.fulfilment_detail.pop("error", None)
    request.save(update_fields=["state", "fulfilment_detail", "updated_at"])
    reason = _failure_text(progress["failures"])
    event_record(
        action=Action.REQUEST_PARTIALLY_FULFILLED,
        target=request,
        tenant=request.tenant,
        result="failure",
        reason=reason,
        detail={"ready": progress["ready"], "failed": len(progress["failures"])},
    )
    _notify_requester(
        request,
        _("您的申请部分交付：%(title)s（%(ready)s 个可用，%(failed)s 个失败）")
        % {"title": request.title, "ready": progress["ready"], "failed": len(progress["failures"])},
        reason,
    )


def can_retry(user, request: ApprovalRequest) -> bool:
    """The requester, or an admin of the tenant, may retry a partial or failed fulfilment."""
    if request.state not in TRANSITIONS["retry"] or hooks.fulfiller_for(request.kind) is None:
        return False
    return request.requester_id == user.pk or permissions.manages_tenant(user, request.tenant)


def request_retry(*, actor: User | None, request: ApprovalRequest) -> ApprovalRequest:
    """Try a partial or failed fulfilment again: the fulfiller makes what is missing and retries what
    failed. A request that failed before anything was made holds its quota again first (409 when
    it no longer fits)."""
    with transaction.atomic():
        request = request_lock(request.pk)
        _allow(request, "retry")
        if actor is not None and not can_retry(actor, request):
            raise Forbidden(_("只有申请人或院系管理员可以重试交付。"), code=TenantsError.NOT_REQUESTER)
        if not (request.fulfilment_detail or {}).get("handed_over"):
            request.reservation = quota_reserve(
                tenant=request.tenant,
                amounts=ResourceAmounts.of(request),
                reason=_("申请 #%(id)s：%(title)s") % {"id": request.pk, "title": request.title},
                actor=actor,
                **_quota_scope(request.kind, request.course, request.requester),
            )
        request.state = State.APPROVED
        request.fulfilment_detail = {k: v for k, v in (request.fulfilment_detail or {}).items() if k != "error"}
        request.save(update_fields=["state", "reservation", "fulfilment_detail", "updated_at"])
        event_record(action=Action.REQUEST_RETRIED, actor=actor, target=request, tenant=request.tenant)
        pk = request.pk
        transaction.on_commit(lambda: _fulfil(pk))
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
        message = getattr(exc, "message", None) or str(exc)
        request_fail(request=request, reason=_("无法开始交付：%(error)s") % {"error": message})


# --- Email ----------------------------------------------------------------------------------


def _approver_emails(request: ApprovalRequest) -> list[str]:
    step = _pending_step(request)
    if step is None:
        return []
    tenant, role = request.tenant, step.approver_role
    if role == ApproverRole.PARENT_ADMIN:
        above = (tenant.parent, ApproverRole.TENANT_ADMIN)
        tenant, role = above if tenant.parent_id else (tenant, ApproverRole.SYSTEM_ADMIN)
    if role == ApproverRole.SYSTEM_ADMIN:
        emails = PlatformAssignment.objects.filter(role=ApproverRole.SYSTEM_ADMIN).values_list("user__email", flat=True)
    else:
        emails = Membership.objects.filter(
            role=TenantRole.TENANT_ADMIN, tenant__path__in=tenant.ancestor_paths()
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

"""Approval workflows: steps, auto-approval, named transitions, quotas at submit and approval, fulfilment."""

from decimal import Decimal

import pytest
from django.core import mail

from common.errors import ErrorCode, Forbidden, InvalidInput, InvalidTransition
from tenants import hooks
from tenants.approvals import policy_set, request_approve, request_cancel, request_fail, request_reject, request_submit
from tenants.models import ApprovalRequest, ApprovalStep, Quota, RequestKind, Reservation
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_set

DESKTOPS_60 = ResourceAmounts(vcpu=120, ram_gib=240, disk_gib=1200, desktops=60)


def submit(scenario, course, amounts=DESKTOPS_60, **kw):
    return request_submit(
        actor=scenario.teacher,
        tenant=scenario.tenant_a,
        course=course,
        kind=RequestKind.COURSE_DESKTOPS,
        title="CS101 实验桌面",
        amounts=amounts,
        payload={"flavor": 1, "seats": 60},
        **kw,
    )


@pytest.fixture
def emails(scenario):
    for user, address in ((scenario.tenant_admin, "admin@x.edu"), (scenario.teacher, "teacher@x.edu")):
        user.email = address
        user.save()
    scenario.sysadmin.email = "sys@x.edu"
    scenario.sysadmin.save()


@pytest.fixture
def fulfilled():
    """A fake fulfiller (a unit test of this layer): records what it was asked to fulfil."""
    calls = []
    previous = hooks.fulfiller_for(RequestKind.COURSE_DESKTOPS)
    hooks.register_fulfiller(RequestKind.COURSE_DESKTOPS, calls.append)
    yield calls
    _restore(previous)


def _restore(previous) -> None:
    # Put back what the apps registered at start-up, so later tests in this process keep it.
    if previous is None:
        hooks.unregister_fulfiller(RequestKind.COURSE_DESKTOPS)
    else:
        hooks.register_fulfiller(RequestKind.COURSE_DESKTOPS, previous)


def test_teacher_request_goes_to_the_department_admin_and_approval_reserves_quota(
    scenario, course, emails, fulfilled, django_capture_on_commit_callbacks
):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 60})
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(scenario, course)
    assert request.state == ApprovalRequest.State.PENDING
    assert [m.to for m in mail.outbox] == [["admin@x.edu"]]

    with django_capture_on_commit_callbacks(execute=True):
        request = request_approve(actor=scenario.tenant_admin, request=request, comment="同意")

    assert request.state == ApprovalRequest.State.APPROVED
    step = request.steps.get()
    assert (step.decided_by, step.comment, step.state) == (scenario.tenant_admin, "同意", "approved")
    assert request.reservation.desktops == 60
    assert Quota.objects.get(course=course).reserved_desktops == 60
    assert [r.pk for r in fulfilled] == [request.pk]
    assert mail.outbox[-1].to == ["teacher@x.edu"] and "已批准" in mail.outbox[-1].subject


def test_an_approved_request_without_a_fulfiller_stays_approved(scenario, course, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        request = request_approve(actor=scenario.tenant_admin, request=submit(scenario, course))
    request.refresh_from_db()
    assert request.state == ApprovalRequest.State.APPROVED


def test_a_fulfiller_that_fails_to_start_fails_the_request_and_frees_the_quota(
    scenario, course, django_capture_on_commit_callbacks
):
    def broken(request):
        raise RuntimeError("no hypervisor")

    previous = hooks.fulfiller_for(RequestKind.COURSE_DESKTOPS)
    hooks.register_fulfiller(RequestKind.COURSE_DESKTOPS, broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            request = request_approve(actor=scenario.tenant_admin, request=submit(scenario, course))
    finally:
        _restore(previous)
    request.refresh_from_db()
    assert request.state == ApprovalRequest.State.FAILED
    assert request.reservation.state == Reservation.State.RELEASED


def test_above_the_threshold_the_platform_system_admin_approves_second(scenario, course, emails):
    policy_set(
        actor=scenario.tenant_admin,
        tenant=scenario.tenant_a,
        name="计算机学院审批",
        steps=[{"approver_role": "tenant_admin"}, {"approver_role": "system_admin", "above_desktops": 50}],
        rules=[],
    )
    big = submit(scenario, course)
    small = submit(scenario, course, amounts=ResourceAmounts(vcpu=2, desktops=1))
    assert [s.approver_role for s in big.steps.all()] == ["tenant_admin", "system_admin"]
    assert [s.approver_role for s in small.steps.all()] == ["tenant_admin"]

    with pytest.raises(Forbidden):
        request_approve(actor=scenario.sysadmin, request=big)  # not their step yet
    big = request_approve(actor=scenario.tenant_admin, request=big)
    assert big.state == ApprovalRequest.State.PENDING
    with pytest.raises(Forbidden):
        request_approve(actor=scenario.tenant_admin, request=big)
    big = request_approve(actor=scenario.sysadmin, request=big, comment="平台同意")
    assert big.state == ApprovalRequest.State.APPROVED
    assert [s.decided_by for s in big.steps.all()] == [scenario.tenant_admin, scenario.sysadmin]


def test_cost_threshold_adds_the_platform_step(scenario, course):
    policy_set(
        actor=None,
        tenant=scenario.university,
        name="全校",
        steps=[{"approver_role": "tenant_admin"}, {"approver_role": "system_admin", "above_cost": Decimal("1000")}],
        rules=[],
    )
    request = submit(scenario, course, amounts=ResourceAmounts(desktops=1), estimated_cost=Decimal("1500"))
    assert request.steps.count() == 2  # the university's policy applies to its child


def test_small_requests_are_approved_automatically_by_rule(scenario, course, django_capture_on_commit_callbacks):
    policy_set(
        actor=None,
        tenant=scenario.tenant_a,
        name="默认",
        steps=[{"approver_role": "tenant_admin"}],
        rules=[
            {"name": "小额课程桌面", "kind": "course_desktops", "max_desktops": 5, "max_vcpu": 10, "max_ram_gib": 20}
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(scenario, course, amounts=ResourceAmounts(vcpu=4, ram_gib=8, desktops=2))
    assert request.state == ApprovalRequest.State.APPROVED
    assert request.auto_rule == "小额课程桌面"
    assert request.steps.get().comment == "由规则“小额课程桌面”自动批准"
    assert request.reservation is not None
    assert submit(scenario, course).state == ApprovalRequest.State.PENDING


def test_request_over_quota_is_refused_at_submit_with_the_shortfall(scenario, course):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 50})
    with pytest.raises(QuotaExceeded) as refused:
        submit(scenario, course)
    assert refused.value.detail["shortfalls"][0]["short_by"] == 10
    assert not ApprovalRequest.objects.exists()


def test_approving_an_already_decided_request_is_an_invalid_transition(scenario, course):
    request = request_reject(actor=scenario.tenant_admin, request=submit(scenario, course), reason="本学期资源不足")
    assert request.rejection_reason == "本学期资源不足"
    assert request.steps.get().state == ApprovalStep.State.REJECTED
    with pytest.raises(InvalidTransition) as refused:
        request_approve(actor=scenario.tenant_admin, request=request)
    assert refused.value.status == 409 and refused.value.code == ErrorCode.INVALID_TRANSITION
    with pytest.raises(InvalidTransition):
        request_cancel(actor=scenario.teacher, request=request)


def test_rejection_must_say_why(scenario, course):
    with pytest.raises(InvalidInput):
        request_reject(actor=scenario.tenant_admin, request=submit(scenario, course), reason="  ")


def test_only_the_requester_cancels_and_only_while_pending(scenario, course):
    request = submit(scenario, course)
    with pytest.raises(Forbidden):
        request_cancel(actor=scenario.tenant_admin, request=request)
    request = request_cancel(actor=scenario.teacher, request=request)
    assert request.state == ApprovalRequest.State.CANCELLED
    assert request.steps.get().state == ApprovalStep.State.SKIPPED


def test_another_tenants_admin_cannot_approve(scenario, course):
    with pytest.raises(Forbidden):
        request_approve(actor=scenario.stranger_admin, request=submit(scenario, course))


def test_nobody_approves_their_own_request(scenario, course):
    request = request_submit(
        actor=scenario.tenant_admin,
        tenant=scenario.tenant_a,
        kind=RequestKind.GPU_ENVIRONMENT,
        title="GPU",
        amounts=ResourceAmounts(gpus=1),
    )
    with pytest.raises(Forbidden):
        request_approve(actor=scenario.tenant_admin, request=request)


def test_students_may_only_ask_for_a_personal_desktop(scenario, course):
    with pytest.raises(Forbidden):
        request_submit(
            actor=scenario.student,
            tenant=scenario.tenant_a,
            kind="gpu_environment",
            title="x",
            amounts=ResourceAmounts(gpus=1),
        )
    request = request_submit(
        actor=scenario.student,
        tenant=scenario.tenant_a,
        kind="personal_desktop",
        title="x",
        amounts=ResourceAmounts(vcpu=2, desktops=1),
    )
    assert request.state == ApprovalRequest.State.PENDING


def test_a_teacher_cannot_ask_for_desktops_of_someone_elses_course(scenario, stranger_course):
    with pytest.raises((Forbidden, InvalidInput)):
        request_submit(
            actor=scenario.teacher,
            tenant=scenario.tenant_a,
            course=stranger_course,
            kind="course_desktops",
            title="x",
            amounts=ResourceAmounts(desktops=1),
        )


def test_approved_quota_increase_raises_the_limit(scenario, course):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 100})
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 40})
    request = request_submit(
        actor=scenario.teacher,
        tenant=scenario.tenant_a,
        course=course,
        kind="quota_increase",
        title="多 20 个",
        amounts=ResourceAmounts(desktops=20),
    )
    request_approve(actor=scenario.tenant_admin, request=request)
    assert Quota.objects.get(course=course).limit_desktops == 60


def test_failed_fulfilment_releases_the_reservation(scenario, course):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 60})
    request = request_approve(actor=scenario.tenant_admin, request=submit(scenario, course))
    request = request_fail(request=request, reason="镜像损坏")
    assert request.state == ApprovalRequest.State.FAILED
    assert Quota.objects.get(course=course).reserved_desktops == 0

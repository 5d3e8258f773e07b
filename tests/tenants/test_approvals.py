"""Approval workflows: steps, auto-approval, named transitions, quotas at submit and approval, fulfilment."""

from decimal import Decimal

import pytest
from django.core import mail

from common.errors import ErrorCode, Forbidden, InvalidInput, InvalidTransition
from tenants import hooks
from tenants.approvals import policy_set, request_approve, request_cancel, request_fail, request_reject, request_submit
from tenants.models import ApprovalRequest, ApprovalStep, Quota, RequestKind, Reservation
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_set

DESKTOPS_60 = ResourceAmounts(vcpu=120, ram_mib=240 * 1024, disk_gib=1200, desktops=60)


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


@pytest.fixture(autouse=True)
def _typed_amounts():
    """This layer alone: no app plans the amounts from a payload (compute's planners are tested in
    tests/classroom/test_requests.py), so the amounts given are the amounts held."""
    kinds = [RequestKind.COURSE_DESKTOPS, RequestKind.PERSONAL_DESKTOP, RequestKind.GPU_ENVIRONMENT]
    previous = {kind: hooks.planner_for(kind) for kind in kinds}
    for kind in kinds:
        hooks.unregister_planner(kind)
    yield
    for kind, planner in previous.items():
        if planner is not None:
            hooks.register_planner(kind, planner)


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
            {
                "name": "小额课程桌面",
                "kind": "course_desktops",
                "max_desktops": 5,
                "max_vcpu": 10,
                "max_ram_mib": 20 * 1024,
            }
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(scenario, course, amounts=ResourceAmounts(vcpu=4, ram_mib=8 * 1024, desktops=2))
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


# --- #14.8: policies only stricter below, quota increases decided above ----------------------


def _university_policy(scenario, rules=()):
    policy_set(
        actor=None,
        tenant=scenario.university,
        name="全校",
        steps=[{"approver_role": "tenant_admin"}, {"approver_role": "system_admin", "above_desktops": 50}],
        rules=list(rules),
    )


def test_a_child_policy_cannot_drop_a_step_its_parent_requires(scenario):
    _university_policy(scenario)
    with pytest.raises(InvalidInput) as refused:
        policy_set(
            actor=scenario.tenant_admin,
            tenant=scenario.tenant_a,
            name="宽松",
            steps=[{"approver_role": "tenant_admin"}],
            rules=[],
        )
    assert refused.value.code == "policy_not_stricter"
    with pytest.raises(InvalidInput):  # the same step at a higher threshold is a looser one
        policy_set(
            actor=scenario.tenant_admin,
            tenant=scenario.tenant_a,
            name="宽松",
            steps=[{"approver_role": "tenant_admin"}, {"approver_role": "system_admin", "above_desktops": 80}],
            rules=[],
        )


def test_a_child_policy_may_add_steps_and_lower_the_thresholds(scenario):
    _university_policy(scenario, rules=[{"name": "小", "kind": "", "max_desktops": 2, "max_vcpu": 4}])
    policy = policy_set(
        actor=scenario.tenant_admin,
        tenant=scenario.tenant_a,
        name="更严",
        steps=[
            {"approver_role": "tenant_admin"},
            {"approver_role": "system_admin", "above_desktops": 20},
            {"approver_role": "parent_admin"},
        ],
        rules=[{"name": "更小", "kind": "personal_desktop", "max_desktops": 1, "max_vcpu": 2}],
    )
    assert policy.steps.count() == 3


def test_a_child_cannot_raise_an_auto_approval_limit_nor_add_one_the_parent_lacks(scenario):
    _university_policy(scenario, rules=[{"name": "小", "kind": "personal_desktop", "max_desktops": 1, "max_vcpu": 2}])
    steps = [{"approver_role": "tenant_admin"}, {"approver_role": "system_admin", "above_desktops": 50}]
    for rule in (
        {"name": "大", "kind": "personal_desktop", "max_desktops": 1, "max_vcpu": 8},
        {"name": "课程", "kind": "course_desktops", "max_desktops": 1, "max_vcpu": 1},
    ):
        with pytest.raises(InvalidInput) as refused:
            policy_set(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="x", steps=steps, rules=[rule])
        assert refused.value.code == "policy_not_stricter"


def test_no_policy_auto_approves_a_quota_increase(scenario, course, django_capture_on_commit_callbacks):
    with pytest.raises(InvalidInput) as refused:
        policy_set(
            actor=None,
            tenant=scenario.tenant_a,
            name="x",
            steps=[{"approver_role": "tenant_admin"}],
            rules=[{"name": "配额", "kind": "quota_increase", "max_desktops": 100, "max_vcpu": 100}],
        )
    assert refused.value.code == "policy_not_stricter"
    # A rule for any kind does not cover quota increases either.
    policy_set(
        actor=None,
        tenant=scenario.tenant_a,
        name="x",
        steps=[{"approver_role": "tenant_admin"}],
        rules=[{"name": "任意", "kind": "", "max_desktops": 100, "max_vcpu": 100}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        request = request_submit(
            actor=scenario.teacher,
            tenant=scenario.tenant_a,
            kind="quota_increase",
            title="多 5 个",
            amounts=ResourceAmounts(desktops=5),
        )
    assert request.state == ApprovalRequest.State.PENDING and request.auto_rule == ""


def test_a_tenant_quota_increase_is_decided_above_the_tenant(scenario, emails, django_capture_on_commit_callbacks):
    from tests import factories

    quota_set(actor=None, tenant=scenario.university, limits={"desktops": 500})
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 100})
    uni_admin = factories.member("uni_admin", scenario.university, "tenant_admin")
    uni_admin.email = "uni@x.edu"
    uni_admin.save()
    request = request_submit(
        actor=scenario.teacher,
        tenant=scenario.tenant_a,
        kind="quota_increase",
        title="学院多 20 个",
        amounts=ResourceAmounts(desktops=20),
    )
    assert [s.approver_role for s in request.steps.all()] == ["tenant_admin", "parent_admin"]
    with django_capture_on_commit_callbacks(execute=True):
        request = request_approve(actor=scenario.tenant_admin, request=request)
    assert request.state == ApprovalRequest.State.PENDING  # the tenant's own admin cannot grow its quota
    with pytest.raises(Forbidden):
        request_approve(actor=scenario.tenant_admin, request=request)
    assert mail.outbox[-1].to == ["uni@x.edu"]
    request = request_approve(actor=uni_admin, request=request)
    assert request.state == ApprovalRequest.State.FULFILLED
    assert Quota.objects.get(key=f"tenant:{scenario.tenant_a.pk}").limit_desktops == 120


def test_a_top_level_tenants_quota_increase_goes_to_the_system_admin(scenario):
    quota_set(actor=None, tenant=scenario.university, limits={"desktops": 500})
    from tests import factories

    uni_admin = factories.member("uni_admin", scenario.university, "tenant_admin")
    request = request_submit(
        actor=uni_admin,
        tenant=scenario.university,
        kind="quota_increase",
        title="全校多 100 个",
        amounts=ResourceAmounts(desktops=100),
    )
    assert [s.approver_role for s in request.steps.all()] == ["tenant_admin", "parent_admin"]
    request.steps.filter(order=1).update(state=ApprovalStep.State.APPROVED)
    with pytest.raises(Forbidden):
        request_approve(actor=uni_admin, request=request)
    request = request_approve(actor=scenario.sysadmin, request=request)
    assert Quota.objects.get(key=f"tenant:{scenario.university.pk}").limit_desktops == 600


# --- #13.2 / #14.12: delivered only when it runs; partial and failed with reasons; retry ---------


def test_a_handed_over_request_is_delivered_only_when_the_fulfiller_reports_everything_runs(
    scenario, course, fulfilled, django_capture_on_commit_callbacks
):
    from tenants.approvals import request_hand_over, request_report

    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 60})
    with django_capture_on_commit_callbacks(execute=True):
        request = request_approve(actor=scenario.tenant_admin, request=submit(scenario, course))
    request = request_hand_over(request=request, detail={"pool": 7})
    assert request.state == ApprovalRequest.State.APPROVED
    assert Reservation.objects.get(pk=request.reservation_id).state == Reservation.State.RELEASED
    request = request_report(request=request, ready=59, failures=[], pending=1)
    assert request.state == ApprovalRequest.State.APPROVED and request.fulfilment_detail["ready"] == 59
    request = request_report(request=request, ready=60, failures=[])
    assert request.state == ApprovalRequest.State.FULFILLED
    assert request.fulfilment_detail["pool"] == 7


def test_a_partial_fulfilment_shows_the_reasons_and_a_retry_makes_it_whole(
    scenario, course, emails, fulfilled, django_capture_on_commit_callbacks
):
    from tenants.approvals import can_retry, request_hand_over, request_report, request_retry

    with django_capture_on_commit_callbacks(execute=True):
        request = request_approve(actor=scenario.tenant_admin, request=submit(scenario, course))
    request_hand_over(request=request)
    failures = [{"name": "学生 3", "error": "存储池空间不足"}]
    with django_capture_on_commit_callbacks(execute=True):
        request = request_report(request=request, ready=59, failures=failures)
    assert request.state == ApprovalRequest.State.PARTIAL
    assert request.fulfilment_detail["failures"] == failures
    assert "部分交付" in mail.outbox[-1].subject and "存储池空间不足" in mail.outbox[-1].body
    assert can_retry(scenario.teacher, request) and not can_retry(scenario.student, request)
    with pytest.raises(Forbidden):
        request_retry(actor=scenario.student, request=request)

    with django_capture_on_commit_callbacks(execute=True):
        request = request_retry(actor=scenario.teacher, request=request)
    assert request.state == ApprovalRequest.State.APPROVED
    assert [r.pk for r in fulfilled] == [request.pk, request.pk]  # the fulfiller is called again
    request = request_report(request=request, ready=60, failures=[])
    assert request.state == ApprovalRequest.State.FULFILLED and "failures" not in request.fulfilment_detail


def test_nothing_made_fails_the_request_tells_the_requester_and_a_retry_holds_the_quota_again(
    scenario, course, emails, fulfilled, django_capture_on_commit_callbacks
):
    from tenants.approvals import request_report, request_retry

    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 60})
    with django_capture_on_commit_callbacks(execute=True):
        request = request_approve(actor=scenario.tenant_admin, request=submit(scenario, course))
    with django_capture_on_commit_callbacks(execute=True):
        request = request_report(request=request, ready=0, failures=[{"name": "a", "error": "没有可用主机"}])
    assert request.state == ApprovalRequest.State.FAILED
    assert request.fulfilment_detail["error"] == "没有可用主机"
    assert Quota.objects.get(course=course).reserved_desktops == 0
    assert "交付失败" in mail.outbox[-1].subject and "没有可用主机" in mail.outbox[-1].body
    with django_capture_on_commit_callbacks(execute=True):
        request = request_retry(actor=scenario.teacher, request=request)
    assert request.state == ApprovalRequest.State.APPROVED
    assert Quota.objects.get(course=course).reserved_desktops == 60


def test_a_rule_that_allows_desktops_allows_their_addresses_and_elastic_ips_beyond_them(
    scenario, course, django_capture_on_commit_callbacks
):
    # A request for desktops carries one address per desktop (the "ips" quota counts them, as billing
    # does): a rule left at 0 IP addresses still approves the desktops it allows, each with its address.
    policy = policy_set(
        actor=None,
        tenant=scenario.tenant_a,
        name="默认",
        steps=[{"approver_role": "tenant_admin"}],
        rules=[
            {"name": "桌面", "kind": "course_desktops", "max_desktops": 3, "max_vcpu": 6, "max_ram_mib": 3 * 1024},
            {"name": "带弹性 IP", "kind": "personal_desktop", "max_desktops": 1, "max_vcpu": 2, "max_ips": 2},
        ],
    )
    assert {r.name: r.max_ips for r in policy.rules.all()} == {"桌面": 3, "带弹性 IP": 2}

    with django_capture_on_commit_callbacks(execute=True):
        request = submit(scenario, course, amounts=ResourceAmounts(vcpu=3, ram_mib=768, desktops=3, ips=3))
    assert (request.state, request.auto_rule) == (ApprovalRequest.State.APPROVED, "桌面")
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(scenario, course, amounts=ResourceAmounts(vcpu=4, desktops=4, ips=4))
    assert request.state == ApprovalRequest.State.PENDING

"""Requests that keep their promise (#13.2, #14.8, #14.12), on libvirt's test driver with tasks
in-process: planned on the real amounts (flavor × roster), delivered only when the desktops run,
partial or failed fulfilment shown with the reasons and retried, personal desktops and GPU
environments made end to end, quota given back when fulfilment fails."""

import pytest
from django.core import mail

from compute import services as compute_services
from compute.classroom import services
from compute.classroom.models import DesktopPool, Seat
from compute.models import Desktop, GpuProfile, Host, ImageVersion
from compute.quota import flavor_share
from tenants.models import ApprovalRequest, Quota, RequestKind
from tenants.quotas import ResourceAmounts, quota_set
from tenants.services import policy_set, request_approve, request_retry, request_submit
from tests.classroom.conftest import make_course

State = ApprovalRequest.State


def _course_request(scenario, env, course, capture):
    with capture(execute=True):
        request = services.course_request_submit(
            actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor
        )
    with capture(execute=True):
        request_approve(actor=scenario.tenant_admin, request=request)
    request.refresh_from_db()
    return request


def _room_for(env, desktops: int) -> None:
    """The endpoint's host has memory for ``desktops`` desktops of the env's flavor, no more."""
    Host.objects.filter(endpoint=env.endpoint).update(memory_mib=env.flavor.memory_mib * desktops + 10)


def test_seats_left_without_capacity_make_the_request_partly_delivered_and_a_retry_completes_it(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course = make_course(scenario, students=2)
    _room_for(env, 1)
    request = _course_request(scenario, env, course, django_capture_on_commit_callbacks)

    assert request.state == State.PARTIAL  # not 已交付: one seat has no desktop
    detail = request.fulfilment_detail
    assert detail["ready"] == 1 and detail["pending"] == 0 and len(detail["failures"]) == 1
    assert "容量" in detail["failures"][0]["error"]
    quota = Quota.objects.filter(course=course).first()
    if quota is not None:
        assert quota.reserved_desktops == 0 and quota.used_desktops == 1  # nothing held for the missing seat

    _room_for(env, 2)
    with django_capture_on_commit_callbacks(execute=True):
        request_retry(actor=scenario.teacher, request=request)
    request.refresh_from_db()
    assert request.state == State.FULFILLED
    pool = DesktopPool.objects.get(request=request)
    # Delivered: both desktops made, stopped outside class until the schedule starts them.
    assert pool.seats.filter(desktop__state=Desktop.State.STOPPED).count() == 2


def test_a_pool_whose_desktops_all_fail_is_not_delivered_its_quota_is_free_and_the_teacher_is_told(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course = make_course(scenario, students=2)
    scenario.teacher.email = "teacher@x.edu"
    scenario.teacher.save()
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 2})
    _room_for(env, 0)
    request = _course_request(scenario, env, course, django_capture_on_commit_callbacks)

    assert request.state == State.FAILED
    assert "容量" in request.fulfilment_detail["error"]
    quota = Quota.objects.get(course=course)
    assert (quota.used_desktops, quota.reserved_desktops) == (0, 0)
    assert mail.outbox[-1].to == ["teacher@x.edu"] and "交付失败" in mail.outbox[-1].subject


def test_desktops_that_fail_on_the_hypervisor_fail_the_request_with_the_reason(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course = make_course(scenario, students=2)
    request = None
    with django_capture_on_commit_callbacks(execute=True):
        request = services.course_request_submit(
            actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor
        )
    # The golden image's storage pool is gone from the hypervisor: every clone fails there.
    ImageVersion.objects.filter(pk=env.version.pk).update(pool="cc-missing-pool")
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(actor=scenario.tenant_admin, request=request)
    request.refresh_from_db()

    assert Desktop.objects.filter(course=course, state=Desktop.State.ERROR).count() == 2
    assert request.state == State.FAILED
    assert len(request.fulfilment_detail["failures"]) == 2 and request.fulfilment_detail["ready"] == 0
    quota = Quota.objects.filter(course=course).first()
    assert quota is None or (quota.used_desktops, quota.reserved_desktops) == (0, 0)


def _rule(scenario, **maxima):
    policy_set(
        actor=None,
        tenant=scenario.tenant_a,
        name="自动",
        steps=[{"approver_role": "tenant_admin"}],
        rules=[{"name": "小额", "kind": "", **maxima}],
    )


def test_auto_approval_looks_at_the_flavor_times_the_roster_not_at_the_amounts_typed(scenario, env, api):
    course = make_course(scenario, students=3)
    _rule(scenario, max_desktops=1, max_vcpu=8, max_ram_mib=8192, max_disk_gib=50)
    response = api.as_user(scenario.teacher).post(
        "/api/v1/requests/",
        {
            "kind": "course_desktops",
            "title": "小小的申请",
            "course": course.pk,
            "payload": {"image_version": env.version.pk, "flavor": env.flavor.pk},
            "amounts": {"desktops": 1, "vcpu": 1},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    request = ApprovalRequest.objects.get(pk=response.json()["id"])
    assert request.state == State.PENDING and request.auto_rule == ""  # 3 desktops, not the 1 typed
    assert ResourceAmounts.of(request) == flavor_share(env.flavor, count=3)
    assert request.payload["seats"] == 3


def test_a_desktop_request_without_a_usable_flavor_is_refused_naming_the_field(scenario, env, api):
    response = api.as_user(scenario.student).post(
        "/api/v1/requests/",
        {"kind": "personal_desktop", "title": "x", "payload": {"image_version": env.version.pk}, "amounts": {}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "request_payload_invalid"
    assert response.json()["detail"]["field"] == "flavor"


def test_a_personal_desktop_request_is_made_for_the_requester_and_delivered_when_it_runs(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    _rule(scenario, max_desktops=1, max_vcpu=2, max_ram_mib=2048, max_disk_gib=10)
    with django_capture_on_commit_callbacks(execute=True):
        request = request_submit(
            actor=scenario.student,
            tenant=scenario.tenant_a,
            kind=RequestKind.PERSONAL_DESKTOP,
            title="毕设用",
            amounts=ResourceAmounts(),
            payload={"image_version": env.version.pk, "flavor": env.flavor.pk},
        )
    request.refresh_from_db()
    assert request.auto_rule == "小额"
    assert request.state == State.FULFILLED
    desktop = Desktop.objects.get(pk=request.fulfilment_detail["desktop"])
    assert desktop.owner == scenario.student and desktop.state == Desktop.State.RUNNING
    tenant_quota = Quota.objects.filter(key=f"tenant:{scenario.tenant_a.pk}").first()
    if tenant_quota is not None:  # counted once: the desktop's share, the request's hold given back
        assert (tenant_quota.used_desktops, tenant_quota.reserved_desktops) == (1, 0)


def test_a_personal_desktop_that_cannot_be_placed_fails_the_request_and_frees_the_quota(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 5})
    _room_for(env, 0)
    scenario.student.email = "s@x.edu"
    scenario.student.save()
    request = request_submit(
        actor=scenario.student,
        tenant=scenario.tenant_a,
        kind=RequestKind.PERSONAL_DESKTOP,
        title="毕设用",
        amounts=ResourceAmounts(),
        payload={"image_version": env.version.pk, "flavor": env.flavor.pk},
    )
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(actor=scenario.tenant_admin, request=request)
    request.refresh_from_db()
    assert request.state == State.FAILED and "容量" in request.fulfilment_detail["error"]
    quota = Quota.objects.get(key=f"tenant:{scenario.tenant_a.pk}")
    assert (quota.used_desktops, quota.reserved_desktops) == (0, 0)
    assert not Desktop.objects.filter(owner=scenario.student).exists()
    assert mail.outbox[-1].to == ["s@x.edu"] and "交付失败" in mail.outbox[-1].subject


@pytest.fixture
def gpu(scenario):
    from tests.compute.conftest import make_env

    gpu_env = make_env(scenario, name="gpudrv", pool="gpu-pool", volume="cc-gpu-golden.qcow2")
    gpu_env.endpoint.cluster = compute_services.cluster_ensure(gpu_env.endpoint.site, "gpu")
    gpu_env.endpoint.save(update_fields=["cluster"])
    Host.objects.filter(endpoint=gpu_env.endpoint).update(gpu_devices=["0000:3b:00.0"])
    profile = GpuProfile.objects.create(name="A100 直通", mode="passthrough", gpus=1)
    gpu_env.flavor = compute_services.flavor_create(
        actor=scenario.sysadmin, name="gpu-small", vcpus=1, memory_mib=128, disk_gib=1, gpu_profile=profile
    )
    return gpu_env


def test_a_gpu_environment_without_a_course_is_one_gpu_desktop_of_the_requesters_on_the_gpu_cluster(
    scenario, env, gpu, django_capture_on_commit_callbacks
):
    from compute.services.request_desktops import fulfil_desktop_request

    request = request_submit(
        actor=scenario.teacher,
        tenant=scenario.tenant_a,
        kind=RequestKind.GPU_ENVIRONMENT,
        title="仿真",
        amounts=ResourceAmounts(),
        payload={"image_version": gpu.version.pk, "flavor": gpu.flavor.pk},
    )
    assert (request.gpus, request.desktops) == (1, 1)
    # Approved without running the after-commit work: libvirt's test driver has no PCI devices.
    with django_capture_on_commit_callbacks(execute=False):
        request = request_approve(actor=scenario.tenant_admin, request=request)
        fulfil_desktop_request(request)
    request.refresh_from_db()
    desktop = Desktop.objects.select_related("endpoint__cluster").get(pk=request.fulfilment_detail["desktop"])
    assert desktop.owner == scenario.teacher and desktop.endpoint.cluster.kind == "gpu"
    assert desktop.gpu_device == "0000:3b:00.0"
    assert request.state == State.APPROVED and request.fulfilment_detail["pending"] == 1


def test_a_gpu_environment_needs_a_gpu_flavor(scenario, env):
    from common.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        request_submit(
            actor=scenario.teacher,
            tenant=scenario.tenant_a,
            kind=RequestKind.GPU_ENVIRONMENT,
            title="仿真",
            amounts=ResourceAmounts(gpus=1),
            payload={"image_version": env.version.pk, "flavor": env.flavor.pk},
        )
    assert refused.value.code == "request_payload_invalid"


def test_a_seat_failing_later_on_the_pool_page_retry_turns_a_failed_request_around(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course = make_course(scenario, students=1)
    _room_for(env, 0)
    request = _course_request(scenario, env, course, django_capture_on_commit_callbacks)
    assert request.state == State.FAILED
    _room_for(env, 1)
    pool = DesktopPool.objects.get(request=request)
    with django_capture_on_commit_callbacks(execute=True):
        services.pool_retry_failed(actor=scenario.teacher, pool=pool)
    request.refresh_from_db()
    assert request.state == State.FULFILLED
    assert Seat.objects.get(pool=pool).desktop.state == Desktop.State.STOPPED  # made, outside class


# --- #13.1: a teacher changes the course's pool through the same wizard ------------------------


def _wizard_change(client, course, env, flavor, apply="now", persistence="persistent"):
    return client.post(
        "/request/new/",
        {
            "course": course.pk,
            "image_version": env.version.pk,
            "flavor": flavor.pk,
            "seats": course.roster.count(),
            "persistence": persistence,
            "apply": apply,
            "reason": "",
            "ct-TOTAL_FORMS": "1",
            "ct-INITIAL_FORMS": "1",
            "ct-MIN_NUM_FORMS": "0",
            "ct-MAX_NUM_FORMS": "14",
            "ct-0-weekday": "1",
            "ct-0-start_time": "10:00",
            "ct-0-end_time": "11:40",
        },
    )


@pytest.fixture
def pool_env(scenario, env, eager, settings, django_capture_on_commit_callbacks):
    from network.models import Network

    settings.SECOND_FACTOR_REQUIRED = False  # the pages, not the sign-in, are under test here
    Network.objects.create(tenant=scenario.tenant_a, name="cs-lab")
    course = make_course(scenario, students=2)
    with django_capture_on_commit_callbacks(execute=True):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    return course, pool


def _client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_the_wizard_opens_on_an_existing_pool_pre_filled_with_its_settings(scenario, env, pool_env):
    course, pool = pool_env
    page = _client(scenario.teacher).get(f"/request/new/?course={course.pk}").content.decode()
    assert 'data-testid="pool-change"' in page
    assert f'<option value="{env.flavor.pk}" selected>' in page
    assert "一门课只能有一个桌面池" not in page  # no longer refused
    assert "主机容量充足" in page  # the placement dry run is among the prerequisites


def test_a_bigger_flavor_goes_through_approval_and_is_applied_to_the_pool(
    scenario, env, pool_env, django_capture_on_commit_callbacks
):
    course, pool = pool_env
    bigger = compute_services.flavor_create(actor=scenario.sysadmin, name="medium", vcpus=2, memory_mib=256, disk_gib=1)
    teacher = _client(scenario.teacher)
    with django_capture_on_commit_callbacks(execute=True):
        response = _wizard_change(teacher, course, env, bigger, apply="next_class")
    assert response.status_code == 302, response.content.decode()[:3000]
    change = ApprovalRequest.objects.exclude(pk=pool.request_id).get()
    assert change.state == State.PENDING  # it takes more vCPU than the pool holds
    assert (change.vcpu, change.desktops) == (2, 0)  # only the growth: 2 seats × (2 - 1) vCPU
    # Made outside class, the seats are stopped; a student starts one: "at the next class", it keeps its
    # flavor while in use (a change "now" restarts it: test_spare_seats).
    seat, busy = pool.seats.select_related("desktop").order_by("pk")
    with django_capture_on_commit_callbacks(execute=True):
        compute_services.desktop_start(actor=scenario.teacher, desktop=busy.desktop)
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(actor=scenario.tenant_admin, request=change)
    pool.refresh_from_db()
    change.refresh_from_db()
    assert pool.flavor == bigger and pool.request_id == change.pk
    seat.desktop.refresh_from_db()
    assert seat.desktop.flavor == bigger and seat.desktop.vcpus == 2
    busy.desktop.refresh_from_db()
    assert busy.desktop.flavor == env.flavor and busy.desktop.state == Desktop.State.RUNNING
    assert change.state == State.FULFILLED and change.fulfilment_detail["ready"] == 2


def test_a_change_that_takes_no_more_quota_is_applied_without_approval(
    scenario, env, pool_env, django_capture_on_commit_callbacks
):
    course, pool = pool_env
    with django_capture_on_commit_callbacks(execute=True):
        response = _wizard_change(_client(scenario.teacher), course, env, env.flavor, persistence="reset_after_class")
    assert response.status_code == 302, response.content.decode()[:3000]
    change = ApprovalRequest.objects.exclude(pk=pool.request_id).get()
    assert change.steps.get().comment == "不需要更多配额，无需审批"
    pool.refresh_from_db()
    assert pool.persistence == "reset_after_class"
    change.refresh_from_db()
    assert change.state == State.FULFILLED


@pytest.mark.django_db(transaction=True)
def test_two_workers_reporting_the_last_desktops_at_once_deliver_the_request_once(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    """Each worker reports the pool after its desktop is made; the two last ones may report together.
    Their reports queue on the request: the first delivers it, the second finds it delivered (it used
    to count from before the first report and fail with InvalidTransition)."""
    import threading

    from django.db import connection

    from audit.actions import Action
    from audit.models import AuditEvent

    course = make_course(scenario, students=2)
    request = _course_request(scenario, env, course, django_capture_on_commit_callbacks)
    assert request.state == State.FULFILLED
    pool = DesktopPool.objects.get(request=request)
    ApprovalRequest.objects.filter(pk=request.pk).update(state=State.APPROVED)  # as before the last reports
    delivered_before = AuditEvent.objects.filter(action=Action.REQUEST_FULFILLED, object_id=str(request.pk)).count()

    barrier, results = threading.Barrier(2), [None, None]

    def report(i):
        try:
            barrier.wait()
            results[i] = services.pool_request_progress(pool.pk)
        except Exception as exc:  # noqa: BLE001 - asserted below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=report, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r is not None for r in results) == 1  # the second found nothing left to report
    request.refresh_from_db()
    assert request.state == State.FULFILLED
    delivered = AuditEvent.objects.filter(action=Action.REQUEST_FULFILLED, object_id=str(request.pk)).count()
    assert delivered == delivered_before + 1

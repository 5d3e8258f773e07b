"""Course desktop pools on libvirt's test driver, tasks in-process: creation, quotas, approvals,
roster changes, resets and GPU placement."""

import pytest
import time_machine

from audit.models import AuditEvent
from common.errors import Forbidden, InvalidInput
from compute import hooks
from compute import services as compute_services
from compute.classroom import selectors as services_selectors
from compute.classroom import services
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.drivers.base import PowerState
from compute.hypervisor import driver_for
from compute.models import Desktop, GpuProfile, Host
from tenants.errors import TenantsError
from tenants.models import ApprovalRequest, ClassTime, Quota, RosterEntry
from tenants.quotas import QuotaExceeded, quota_set
from tenants.services import course_class_times_set, request_approve
from tests import factories
from tests.classroom.conftest import MONDAY, at, make_course


def _pool(env, course, capture, actor, **kwargs):
    with capture(execute=True):
        pool = services.pool_create(actor=actor, course=course, image_version=env.version, flavor=env.flavor, **kwargs)
    return pool


@pytest.mark.parametrize(
    ("when", "state"),
    [
        (at(MONDAY, 8), Desktop.State.STOPPED),  # two hours before class: made stopped, the schedule starts them
        (at(MONDAY, 9, 50), Desktop.State.RUNNING),  # within the 15 minutes before class: made running
        (at(MONDAY, 10, 30), Desktop.State.RUNNING),  # in class
    ],
)
def test_a_pool_gives_every_roster_student_one_linked_clone_that_follows_the_schedule_from_creation(
    scenario, env, eager, django_capture_on_commit_callbacks, when, state
):
    course = make_course(scenario, students=4)
    with time_machine.travel(when, tick=False):
        pool = _pool(env, course, django_capture_on_commit_callbacks, scenario.teacher)

    seats = list(pool.seats.select_related("desktop", "student"))
    assert len(seats) == 4
    assert {s.student_id for s in seats} == set(
        RosterEntry.objects.filter(course=course).values_list("user_id", flat=True)
    )
    for seat in seats:
        assert seat.desktop.state == state
        assert seat.desktop.owner_id == seat.student_id
        assert seat.desktop.course_id == course.pk
    vm = driver_for(env.endpoint).get_vm(seats[0].desktop.vm_name)
    assert vm.disks[0].backing.endswith(env.version.volume)  # a linked clone of the golden image
    assert (vm.power_state == PowerState.RUNNING) == (state == Desktop.State.RUNNING)
    assert AuditEvent.objects.filter(action="pool.created", object_id=str(pool.pk)).exists()


def test_a_roster_bigger_than_the_quota_is_refused_before_anything_is_created(scenario, env, course):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 1})

    with pytest.raises(QuotaExceeded) as refused:
        services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)

    shortfall = refused.value.detail["shortfalls"][0]
    assert shortfall["resource"] == "desktops"
    assert shortfall["requested"] == 2 and shortfall["available"] == 1 and shortfall["short_by"] == 1
    assert not DesktopPool.objects.exists()
    assert not Desktop.objects.exists()


def test_a_student_cannot_create_a_pool(scenario, env, course):
    with pytest.raises(Forbidden) as refused:
        services.pool_create(actor=scenario.student, course=course, image_version=env.version, flavor=env.flavor)
    assert refused.value.code == ErrorCode.POOL_FORBIDDEN
    assert not DesktopPool.objects.exists()


def test_an_approved_course_request_becomes_a_pool_and_the_quota_counts_each_desktop_once(
    scenario, env, course, eager, django_capture_on_commit_callbacks
):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 2, "vcpu": 2})
    with django_capture_on_commit_callbacks(execute=True):
        request = services.course_request_submit(
            actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor
        )
    assert request.state == ApprovalRequest.State.PENDING
    assert request.payload["seats"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(actor=scenario.tenant_admin, request=request)

    request.refresh_from_db()
    assert request.state == ApprovalRequest.State.FULFILLED
    pool = DesktopPool.objects.get(course=course)
    assert pool.request_id == request.pk
    # Delivered although stopped: outside class the desktops wait, made, for the schedule to start them.
    assert pool.seats.filter(desktop__state=Desktop.State.STOPPED).count() == 2
    quota = Quota.objects.get(course=course)
    assert (quota.used_desktops, quota.reserved_desktops) == (2, 0)
    assert (quota.used_vcpu, quota.reserved_vcpu) == (2, 0)


def test_a_course_request_over_the_quota_is_refused_with_the_shortfall(scenario, env, course):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 1})
    with pytest.raises(QuotaExceeded) as refused:
        services.course_request_submit(
            actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor
        )
    assert refused.value.detail["shortfalls"][0]["short_by"] == 1
    assert not ApprovalRequest.objects.exists()


def test_roster_changes_hand_over_a_reset_desktop_add_new_ones_and_retire_the_rest(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course = make_course(scenario, students=3)
    pool = _pool(env, course, django_capture_on_commit_callbacks, scenario.teacher)
    leaving = Seat.objects.get(pool=pool, student=scenario.student)
    old_disk = driver_for(env.endpoint).get_vm(leaving.desktop.vm_name).disks[0].volume
    newcomer = factories.member("a_newcomer", scenario.tenant_a, "student")
    RosterEntry.objects.filter(course=course, user=scenario.student).delete()
    RosterEntry.objects.create(course=course, user=newcomer, student_number="20269999")

    with django_capture_on_commit_callbacks(execute=True):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)

    assert result.as_dict() == {
        "added": 0,
        "handed_over": 1,
        "retired": 0,
        "pending": 0,
        "waiting": 0,
        "assigned": 0,
        "spares_added": 0,
        "freed": 0,
    }
    leaving.refresh_from_db()
    desktop = leaving.desktop
    desktop.refresh_from_db()
    assert leaving.student == newcomer and desktop.owner == newcomer
    # Outside class the seat was made stopped; the hand-over resets it and leaves it so.
    assert desktop.state == Desktop.State.STOPPED
    # 等保: the newcomer gets a fresh disk, never the previous student's.
    assert driver_for(env.endpoint).get_vm(desktop.vm_name).disks[0].volume != old_disk
    assert AuditEvent.objects.filter(action="pool.seat_handed_over").exists()

    RosterEntry.objects.filter(course=course, user=scenario.student2).delete()
    with django_capture_on_commit_callbacks(execute=True):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    assert result.retired == 1
    gone = Seat.objects.get(pool=pool, student=scenario.student2)
    assert gone.state == Seat.State.RETIRED
    assert gone.desktop.state == Desktop.State.DELETED
    assert gone.desktop.vm_name not in {vm.name for vm in driver_for(env.endpoint).list_vms()}

    extra = factories.member("a_extra", scenario.tenant_a, "student")
    RosterEntry.objects.create(course=course, user=extra, student_number="20268888")
    with django_capture_on_commit_callbacks(execute=True):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    assert result.added == 1
    # A seat added outside class is made stopped, as the schedule has the others.
    assert Seat.objects.get(pool=pool, student=extra).desktop.state == Desktop.State.STOPPED


def test_a_seat_whose_desktop_is_refused_keeps_the_reason_and_is_retried_from_the_pool(
    scenario, env, eager, django_capture_on_commit_callbacks, monkeypatch
):
    """A batch of seats that is refused is taken again seat by seat, each in its own transaction: a
    refusal midway leaves the pool and the seats already served, and the rest say why."""
    from common.errors import Conflict

    course = make_course(scenario, students=3)
    real_create = compute_services.desktop_create
    calls = []

    def full_after_one(**kwargs):
        calls.append(kwargs["owner"])
        if len(calls) > 1:
            raise Conflict("没有可用的主机容量。", code="no_capacity")
        return real_create(**kwargs)

    def batch_refused(**kwargs):
        raise Conflict("没有可用的主机容量。", code="no_capacity")

    monkeypatch.setattr(compute_services, "desktop_create", full_after_one)
    monkeypatch.setattr(compute_services, "desktops_create", batch_refused)
    pool = _pool(env, course, django_capture_on_commit_callbacks, scenario.teacher)

    seats = list(pool.seats.order_by("pk"))
    assert len(seats) == 3 and len(calls) == 2  # the refusal ends the round: no third attempt
    assert seats[0].desktop.state == Desktop.State.STOPPED and seats[0].error == ""  # made, outside class
    assert [(s.desktop_id, s.error) for s in seats[1:]] == [(None, "没有可用的主机容量。")] * 2
    progress = services_selectors.pool_progress(pool.seats.select_related("desktop"))
    assert (progress.ready, len(progress.failed), progress.done) == (1, 2, True)  # nothing left to wait for

    monkeypatch.setattr(compute_services, "desktop_create", real_create)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.pool_retry_failed(actor=scenario.teacher, pool=pool) == 2
    assert set(Desktop.objects.filter(seat__pool=pool).values_list("state", flat=True)) == {"stopped"}
    assert not pool.seats.exclude(error="").exists()


def _hand_over_setup(scenario, env, capture):
    course = make_course(scenario, students=2)
    pool = _pool(env, course, capture, scenario.teacher)
    seat = Seat.objects.select_related("desktop").get(pool=pool, student=scenario.student)
    newcomer = factories.member("a_newcomer", scenario.tenant_a, "student")
    RosterEntry.objects.filter(course=course, user=scenario.student).delete()
    RosterEntry.objects.create(course=course, user=newcomer, student_number="20269999")
    return pool, seat, newcomer


def test_a_handed_over_desktop_is_reported_to_the_observers_with_its_new_owner(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    from billing.models import MeterCursor, UsageInterval

    capture = django_capture_on_commit_callbacks
    with time_machine.travel(at(MONDAY, 8), tick=False):
        pool, seat, newcomer = _hand_over_setup(scenario, env, capture)
    seen = []

    def observer(*, desktop, at, reason):
        # What the row holds in the database at that moment, read back inside the transaction.
        saved_owner = Desktop.objects.filter(pk=desktop.pk).values_list("owner_id", flat=True).get()
        seen.append((desktop.pk, reason, desktop.owner_id, saved_owner, at))

    hooks.register_desktop_observer(observer)
    try:
        with time_machine.travel(at(MONDAY, 9), tick=False), capture(execute=True):
            services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    finally:
        hooks.unregister_desktop_observer(observer)

    handed = [entry for entry in seen if entry[1] == "handed_over"]
    assert handed == [(seat.desktop_id, "handed_over", newcomer.pk, newcomer.pk, at(MONDAY, 9))]
    # Billing (registered at start-up) metered the hour to the student who had the desktop then.
    assert MeterCursor.objects.get(desktop_id=seat.desktop_id).user_id == newcomer.pk
    before = UsageInterval.objects.filter(desktop_id=seat.desktop_id, end__lte=at(MONDAY, 9))
    assert before.exists() and set(before.values_list("user_id", flat=True)) == {scenario.student.pk}


def test_an_observer_refusing_the_hand_over_rolls_it_back(scenario, env, eager, django_capture_on_commit_callbacks):
    pool, seat, newcomer = _hand_over_setup(scenario, env, django_capture_on_commit_callbacks)

    def observer(*, desktop, at, reason):
        if reason == "handed_over":
            raise RuntimeError("metering is down")

    hooks.register_desktop_observer(observer)
    try:
        with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
            services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    finally:
        hooks.unregister_desktop_observer(observer)

    seat.refresh_from_db()
    seat.desktop.refresh_from_db()
    # Called inside the transaction: nothing of the hand-over (nor the reset before it) was kept.
    assert seat.student == scenario.student and seat.desktop.owner == scenario.student
    assert seat.desktop.state == Desktop.State.STOPPED  # as it was made, outside class
    assert not AuditEvent.objects.filter(action="pool.seat_handed_over").exists()


def test_roster_growth_beyond_the_quota_adds_seats_that_wait_with_the_reason(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course = make_course(scenario, students=2)
    pool = _pool(env, course, django_capture_on_commit_callbacks, scenario.teacher)
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 2})
    for n in range(2):
        user = factories.member(f"a_more{n}", scenario.tenant_a, "student")
        RosterEntry.objects.create(course=course, user=user, student_number=f"2026700{n}")

    result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    assert (result.added, result.waiting) == (2, 2)
    waiting = pool.seats.filter(desktop__isnull=True)
    assert waiting.count() == 2 and all("配额" in s.error or "quota" in s.error.lower() for s in waiting)
    assert Desktop.objects.filter(seat__pool=pool).count() == 2  # nothing was made beyond the quota


def test_resetting_a_seat_gives_a_new_disk_on_the_same_golden_image(
    scenario, env, course, eager, django_capture_on_commit_callbacks
):
    with time_machine.travel(at(MONDAY, 10, 30), tick=False):  # in class: the desktops run
        pool = _pool(env, course, django_capture_on_commit_callbacks, scenario.teacher)
        seat = pool.seats.select_related("desktop").first()
        before = driver_for(env.endpoint).get_vm(seat.desktop.vm_name).disks[0]

        with django_capture_on_commit_callbacks(execute=True):
            services.seat_reset(actor=scenario.teacher, seat=seat)

    after = driver_for(env.endpoint).get_vm(seat.desktop.vm_name).disks[0]
    assert after.volume != before.volume
    assert after.backing == before.backing
    seat.desktop.refresh_from_db()
    assert seat.desktop.state == Desktop.State.RUNNING  # back on, as it was before the reset


def test_a_student_cannot_reset_or_power_the_pool(scenario, env, course, eager, django_capture_on_commit_callbacks):
    pool = _pool(env, course, django_capture_on_commit_callbacks, scenario.teacher)
    with pytest.raises(Forbidden) as reset:
        services.pool_reset(actor=scenario.student, pool=pool)
    with pytest.raises(Forbidden) as power:
        services.pool_power(actor=scenario.student, pool=pool, verb="stop")
    assert reset.value.code == power.value.code == ErrorCode.POOL_FORBIDDEN


def test_a_class_time_overlapping_another_of_the_same_course_is_refused(scenario, course):
    import datetime

    with pytest.raises(InvalidInput) as refused:
        course_class_times_set(
            actor=scenario.teacher,
            course=course,
            slots=[(1, datetime.time(10), datetime.time(11, 40)), (1, datetime.time(11), datetime.time(12))],
        )
    assert refused.value.code == TenantsError.CLASS_TIMES_OVERLAP
    assert ClassTime.objects.filter(course=course).count() == 1  # unchanged


def test_a_gpu_flavor_goes_to_the_gpu_cluster_and_counts_gpus(
    scenario, env, course, django_capture_on_commit_callbacks
):
    from tests.compute.conftest import make_env

    gpu_env = make_env(scenario, name="gpudrv", pool="gpu-pool", volume="cc-gpu-golden.qcow2")
    gpu_env.endpoint.cluster = compute_services.cluster_ensure(gpu_env.endpoint.site, "gpu")
    gpu_env.endpoint.save(update_fields=["cluster"])
    Host.objects.filter(endpoint=gpu_env.endpoint).update(gpu_devices=["0000:3b:00.0", "0000:3c:00.0"])
    profile = GpuProfile.objects.create(name="A100 直通", mode="passthrough", gpus=1)
    flavor = compute_services.flavor_create(
        actor=scenario.sysadmin, name="gpu-small", vcpus=1, memory_mib=128, disk_gib=1, gpu_profile=profile
    )
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"gpus": 2})

    # Not provisioned here: libvirt's test driver has no PCI devices to pass through.
    with django_capture_on_commit_callbacks(execute=False):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=gpu_env.version, flavor=flavor)

    desktops = [s.desktop for s in pool.seats.select_related("desktop__endpoint__cluster")]
    assert {d.endpoint.cluster.kind for d in desktops} == {"gpu"}
    assert sorted(d.gpu_device for d in desktops) == ["0000:3b:00.0", "0000:3c:00.0"]
    quota = Quota.objects.get(course=course)
    assert quota.used_gpus + quota.reserved_gpus == 2
    third = factories.member("a_third", scenario.tenant_a, "student")
    RosterEntry.objects.create(course=course, user=third, student_number="20265555")
    with django_capture_on_commit_callbacks(execute=False):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    assert result.waiting == 1  # a third GPU is beyond the course's quota: the seat waits, with the reason
    assert Seat.objects.get(pool=pool, student=third).desktop is None


def test_a_pools_seats_read_its_image_flavor_course_and_tenant_once_not_per_seat(scenario, env, eager):
    """Writing a pool's seats reads the pool's image version, image, flavor, course and tenant rows once for
    the batch (compute.classroom.services.seats), not once per seat; the pool itself is locked per seat."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    by_key = re.compile(
        r"FROM `(tenants_course|tenants_tenant|compute_flavor|compute_imageversion|compute_image)` WHERE `\1`.`id` = "
    )

    def related_reads(students: int, code: str) -> list[str]:
        course = make_course(scenario, students=students, code=code)
        with CaptureQueriesContext(connection) as queries:
            services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
        return [q["sql"] for q in queries.captured_queries if by_key.search(q["sql"]) and "FOR UPDATE" not in q["sql"]]

    six, two = related_reads(6, "CS601"), related_reads(2, "CS201")
    assert len(six) == len(two), six


def test_a_seat_written_after_the_pools_flavor_changed_takes_the_new_flavor(scenario, env):
    from compute.classroom.services.seats import _reuse_related
    from compute.models import Flavor

    course = make_course(scenario, students=1, code="CS301")
    pool = DesktopPool.objects.create(
        course=course, tenant=course.tenant, name="p", image_version=env.version, flavor=env.flavor
    )
    loaded = DesktopPool.objects.select_related("flavor", "image_version", "course", "tenant").get(pk=pool.pk)
    bigger = Flavor.objects.create(name="bigger", vcpus=2, memory_mib=256, disk_gib=1)
    DesktopPool.objects.filter(pk=pool.pk).update(flavor=bigger)
    locked = DesktopPool.objects.get(pk=pool.pk)
    _reuse_related(locked, loaded)
    assert locked.flavor == bigger  # read anew: the batch's flavor is no longer the pool's
    assert locked.image_version is loaded.image_version  # unchanged: the batch's row serves

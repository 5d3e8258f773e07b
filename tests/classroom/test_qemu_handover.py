"""Issue #14.9 on the real libvirtd + QEMU: when a seat passes to another student, the previous student's
data disk comes off the VM (kept for them, or wiped and deleted, by the pool's setting) and the system disk
is reset, so nothing the previous student wrote is reachable by the next; a retired seat's data disk
follows the same setting."""

import pytest

from compute import services as compute_services
from compute.classroom import services
from compute.classroom.models import DesktopPool, Seat
from compute.hypervisor import driver_for
from compute.models import Volume
from tenants.models import RosterEntry
from tests import factories
from tests.classroom.conftest import make_course
from tests.harness.qemu import qemu_volumes

pytestmark = pytest.mark.libvirt


def _run(capture, fn, **kwargs):
    with capture(execute=True):
        return fn(**kwargs)


def _pool_with_a_data_disk(scenario, qemu_env, capture, leaver_disks):
    course = make_course(scenario, students=1)
    pool = _run(
        capture,
        services.pool_create,
        actor=scenario.teacher,
        course=course,
        image_version=qemu_env.version,
        flavor=qemu_env.flavor,
    )
    pool = services.pool_settings_update(actor=scenario.teacher, pool=pool, leaver_disks=leaver_disks)
    seat = Seat.objects.select_related("desktop").get(pool=pool, student=scenario.student)
    volume = _run(capture, compute_services.volume_attach, actor=scenario.student, desktop=seat.desktop, size_gib=1)
    volume.refresh_from_db()
    assert volume.state == Volume.State.ATTACHED, volume.last_error
    return course, pool, seat, volume


def _hand_seat_to_a_newcomer(scenario, course, pool, capture):
    newcomer = factories.member("a_newcomer", scenario.tenant_a, "student")
    RosterEntry.objects.filter(course=course, user=scenario.student).delete()
    RosterEntry.objects.create(course=course, user=newcomer, student_number="20269999")
    result = _run(capture, services.pool_sync_roster, actor=scenario.teacher, pool=pool)
    assert result.handed_over == 1
    return newcomer


def test_a_handed_over_seat_keeps_the_leavers_data_disk_for_them_off_the_vm(
    scenario, qemu_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    course, pool, seat, volume = _pool_with_a_data_disk(scenario, qemu_env, capture, DesktopPool.LeaverDisks.KEEP)
    system_before = driver_for(qemu_env.endpoint).get_vm(seat.desktop.vm_name).disks[0].volume

    newcomer = _hand_seat_to_a_newcomer(scenario, course, pool, capture)

    seat.refresh_from_db()
    volume.refresh_from_db()
    assert seat.student == newcomer and seat.desktop.owner == newcomer
    assert (volume.state, volume.desktop, volume.owner) == (Volume.State.DETACHED, None, scenario.student)
    disks = {d.volume for d in driver_for(qemu_env.endpoint).get_vm(seat.desktop.vm_name).disks}
    assert volume.volume_name not in disks and system_before not in disks  # nothing of the leaver's left
    assert volume.volume_name in qemu_volumes()  # kept for its owner, who may attach it elsewhere


def test_a_handed_over_seat_wipes_and_deletes_the_leavers_data_disk_by_pool_setting(
    scenario, qemu_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    course, pool, seat, volume = _pool_with_a_data_disk(scenario, qemu_env, capture, DesktopPool.LeaverDisks.DELETE)

    _hand_seat_to_a_newcomer(scenario, course, pool, capture)

    volume.refresh_from_db()
    assert volume.state == Volume.State.DELETED
    assert volume.volume_name not in qemu_volumes()
    disks = {d.volume for d in driver_for(qemu_env.endpoint).get_vm(seat.desktop.vm_name).disks}
    assert volume.volume_name not in disks


def test_a_retired_seat_keeps_the_leavers_data_disk_by_pool_setting(
    scenario, qemu_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    course, pool, seat, volume = _pool_with_a_data_disk(scenario, qemu_env, capture, DesktopPool.LeaverDisks.KEEP)
    RosterEntry.objects.filter(course=course, user=scenario.student).delete()
    assert _run(capture, services.pool_sync_roster, actor=scenario.teacher, pool=pool).retired == 1

    volume.refresh_from_db()
    assert (volume.state, volume.desktop, volume.owner) == (Volume.State.DETACHED, None, scenario.student)
    assert volume.volume_name in qemu_volumes()


@pytest.mark.parametrize("setting", [DesktopPool.LeaverDisks.KEEP, DesktopPool.LeaverDisks.DELETE])
def test_a_seat_taken_back_by_the_teacher_is_a_spare_with_nothing_of_the_student_left(
    scenario, qemu_env, eager, django_capture_on_commit_callbacks, setting
):
    capture = django_capture_on_commit_callbacks
    _course, _pool, seat, volume = _pool_with_a_data_disk(scenario, qemu_env, capture, setting)
    system_before = driver_for(qemu_env.endpoint).get_vm(seat.desktop.vm_name).disks[0].volume

    _run(capture, services.seat_take_back, actor=scenario.teacher, seat=seat)

    seat.refresh_from_db()
    volume.refresh_from_db()
    assert seat.is_spare and seat.desktop.owner == scenario.teacher
    disks = {d.volume for d in driver_for(qemu_env.endpoint).get_vm(seat.desktop.vm_name).disks}
    assert volume.volume_name not in disks and system_before not in disks
    if setting == DesktopPool.LeaverDisks.KEEP:
        assert (volume.state, volume.desktop, volume.owner) == (Volume.State.DETACHED, None, scenario.student)
        assert volume.volume_name in qemu_volumes()
    else:
        assert volume.state == Volume.State.DELETED and volume.volume_name not in qemu_volumes()

"""A 10-student pool on the real libvirtd + QEMU, provisioned by a real Celery worker; the schedule
(clock driven by time-machine, beat task called directly) powers it on before class and off after;
a reset replaces the overlay while the golden backing file stays."""

import time

import pytest
import time_machine

from compute.classroom import services
from compute.classroom.models import Seat
from compute.classroom.tasks import schedule_tick
from compute.models import Cluster, Desktop
from tests.classroom.conftest import MONDAY, at, make_course
from tests.harness.qemu import GOLDEN, POOL_DIR, pool_volumes

pytestmark = [pytest.mark.libvirt, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait(pool, state: str, *, timeout: float = 180) -> list[Desktop]:
    deadline = time.monotonic() + timeout
    while True:
        desktops = list(Desktop.objects.filter(seat__pool=pool, seat__state=Seat.State.ACTIVE))
        if desktops and all(d.state == state for d in desktops):
            return desktops
        errors = [d.error_reason for d in desktops if d.state == Desktop.State.ERROR]
        assert not errors, errors
        assert time.monotonic() < deadline, sorted(d.state for d in desktops)
        time.sleep(0.3)


def _live_states(desktops) -> set[str]:
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        return {"running" if conn.lookupByName(d.vm_name).isActive() else "stopped" for d in desktops}
    finally:
        conn.close()


def test_a_ten_student_pool_is_provisioned_scheduled_and_reset_on_qemu(scenario, qemu_env, celery_worker):
    course = make_course(scenario, students=10)
    # Ten idle TCG guests on a 2-core machine: more vCPUs than the default 4x overcommit allows.
    Cluster.objects.filter(pk=qemu_env.endpoint.cluster_id).update(cpu_overcommit=16)
    pool = services.pool_create(
        actor=scenario.teacher, course=course, image_version=qemu_env.version, flavor=qemu_env.flavor
    )

    # Made outside class (the course meets on Mondays 10:00, the test runs now): defined, not started.
    desktops = _wait(pool, Desktop.State.STOPPED)
    assert len(desktops) == 10
    assert _live_states(desktops) == {"stopped"}
    volumes = pool_volumes()
    golden = str(POOL_DIR / GOLDEN)
    overlays = {name: backing for name, backing in volumes.items() if name != GOLDEN}
    assert len(overlays) == 10 and set(overlays.values()) == {golden}  # linked clones of the golden image

    with time_machine.travel(at(MONDAY, 9, 46), tick=False):  # 14 minutes before class
        assert schedule_tick.apply().get()["powered_on"] == 10
    desktops = _wait(pool, Desktop.State.RUNNING)
    assert all(d.vnc_port for d in desktops)
    assert _live_states(desktops) == {"running"}

    with time_machine.travel(at(MONDAY, 11, 51), tick=False):  # class ended 11:40, shutdown 10 min after
        assert schedule_tick.apply().get()["stopped"] == 10
    desktops = _wait(pool, Desktop.State.STOPPED)
    assert _live_states(desktops) == {"stopped"}

    seat = pool.seats.select_related("desktop").first()
    before = {n for n in pool_volumes() if n.startswith(seat.desktop.vm_name)}
    services.seat_reset(actor=scenario.teacher, seat=seat)
    deadline = time.monotonic() + 60
    while True:
        seat.desktop.refresh_from_db()
        if seat.desktop.state == Desktop.State.STOPPED:
            break
        assert seat.desktop.state != Desktop.State.ERROR, seat.desktop.error_reason
        assert time.monotonic() < deadline
        time.sleep(0.3)
    volumes = pool_volumes()
    after = {n for n in volumes if n.startswith(seat.desktop.vm_name)}
    assert len(after) == 1 and after.isdisjoint(before)  # a new overlay; the old one is destroyed
    assert volumes[after.pop()] == golden and GOLDEN in volumes  # the backing file stays

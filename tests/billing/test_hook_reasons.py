"""Every change compute and classroom report through ``compute.hooks.desktop_changed`` is metered
from the desktop's saved state, whatever the reason says: resize, GPU, disks, owner, course, addresses.

The tests change the rows the way those services do and then call the hook directly, as they do
inside their transaction; billing must need no change for a new reason.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from billing import services
from billing.models import MeterCursor, UsageInterval
from compute import hooks
from compute.models import Desktop, Flavor, Volume
from tests.billing.conftest import course_of, desktop_row

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 10, 12, 9, 0, tzinfo=SHANGHAI)
T1 = T0 + timedelta(hours=3, minutes=20)
pytestmark = pytest.mark.django_db

HELD = ("tenant_id", "course_id", "user_id", "running", "vcpus", "ram_mib", "disk_gib", "gpus", "ips")


def resize(desktop, scenario):
    desktop.flavor = Flavor.objects.create(name="bill-large", vcpus=4, memory_mib=8192, disk_gib=60)
    desktop.vcpus, desktop.memory_mib, desktop.disk_gib = 4, 8192, 60
    desktop.save()
    return {"vcpus": 4, "ram_mib": 8192, "disk_gib": 60}


def gpu_assign(desktop, scenario):
    desktop.gpus, desktop.gpu_device = 1, "0000:3b:00.0"
    desktop.save()
    return {"gpus": 1}


def disk_attach(desktop, scenario):
    Volume.objects.create(desktop=desktop, name="data", size_gib=100, state=Volume.State.ATTACHED)
    return {"disk_gib": 40 + 100}


def disk_detach(desktop, scenario):
    Volume.objects.filter(desktop=desktop, name="old").update(state=Volume.State.DETACHED)
    return {"disk_gib": 40}


def owner_change(desktop, scenario):
    desktop.owner = scenario.student2
    desktop.save()
    return {"user_id": scenario.student2.pk}


def course_change(desktop, scenario):
    desktop.course = course_of(scenario.tenant_a, scenario.teacher, code="CS202")
    desktop.save()
    return {"course_id": desktop.course_id}


def nic_add(desktop, scenario):
    desktop.hardware = {"nics": [{"ip": "10.0.0.1"}, {"ip": "10.0.1.1"}]}
    desktop.save()
    return {"ips": 2}


CHANGES = {
    "resized": resize,
    "gpu_assigned": gpu_assign,
    "volume_attached": disk_attach,
    "volume_detached": disk_detach,
    "owner_changed": owner_change,
    "course_moved": course_change,
    "nic_added": nic_add,
    "a_reason_billing_has_never_heard_of": resize,
}


@pytest.fixture
def running(scenario, course):
    """A running CS101 desktop (2 vCPU, 4 GiB, 40 GiB + an old 10 GiB data disk, one address) metered since T0."""
    desktop = desktop_row(
        scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running", vcpus=2
    )
    desktop.hardware = {"nics": [{"ip": "10.0.0.1"}]}
    desktop.save()
    Volume.objects.create(desktop=desktop, name="old", size_gib=10, state=Volume.State.ATTACHED)
    hooks.desktop_changed(desktop=desktop, at=T0, reason="provisioned")
    return desktop


def held_now(desktop) -> dict:
    cursor = MeterCursor.objects.get(pk=desktop.pk)
    return {name: getattr(cursor, name) for name in HELD}


@pytest.mark.parametrize("reason", list(CHANGES))
def test_each_reported_change_closes_the_interval_and_opens_one_with_what_the_desktop_holds_now(
    scenario, running, reason
):
    before = held_now(running)
    assert before == {
        "tenant_id": scenario.tenant_a.pk,
        "course_id": running.course_id,
        "user_id": scenario.student.pk,
        "running": True,
        "vcpus": 2,
        "ram_mib": 4096,
        "disk_gib": 40 + 10,
        "gpus": 0,
        "ips": 1,
    }
    if reason != "volume_detached":
        # Every case but the detach starts without the old data disk, to keep the expected sums plain.
        Volume.objects.filter(desktop=running).update(state=Volume.State.DETACHED)
        hooks.desktop_changed(desktop=running, at=T0, reason="volume_detached")
        before["disk_gib"] = 40
    changed_at = held_now(running)

    with transaction.atomic():  # as the services do: the row saved, then the hook, in one transaction
        desktop = Desktop.objects.locked(running.pk)
        expected = {**changed_at, **CHANGES[reason](desktop, scenario)}
        hooks.desktop_changed(desktop=desktop, at=T1, reason=reason)
        hooks.desktop_changed(desktop=desktop, at=T1 + timedelta(minutes=5), reason=reason)  # reported twice

    assert held_now(running) == expected
    assert MeterCursor.objects.get(pk=running.pk).since == T1
    # Up to the change, the old allocation; nothing written by the repeated report.
    closed = list(UsageInterval.objects.filter(desktop=running).order_by("start"))
    last = closed[-1]
    assert last.end == T1 and {name: getattr(last, name) for name in HELD} == before
    assert sum(piece.duration_us for piece in closed) == int((T1 - T0).total_seconds()) * 1_000_000

    services.usage_close_until(until=T1 + timedelta(hours=1))
    after = UsageInterval.objects.get(desktop=running, start=T1)
    assert {name: getattr(after, name) for name in HELD} == expected


def test_a_change_billing_does_not_charge_for_writes_nothing(scenario, running):
    running.name = "renamed"
    running.save()
    hooks.desktop_changed(desktop=running, at=T1, reason="renamed")

    assert MeterCursor.objects.get(pk=running.pk).since == T0
    assert not UsageInterval.objects.filter(desktop=running).exists()


def test_a_desktop_resized_while_stopped_is_charged_its_new_size_from_its_next_start(scenario, running):
    stopped_at, started_at = T0 + timedelta(hours=1), T1 + timedelta(hours=1)
    running.state, running.power_state = Desktop.State.STOPPED, Desktop.Power.STOPPED
    running.save()
    hooks.desktop_changed(desktop=running, at=stopped_at, reason="stopped")
    running.vcpus, running.memory_mib = 4, 8192  # the system disk stays: it is charged while stopped
    running.save()
    hooks.desktop_changed(desktop=running, at=T1, reason="resized")
    # Stopped, it holds its disks and address only: the new vCPUs and RAM cost nothing yet.
    assert MeterCursor.objects.get(pk=running.pk).since == stopped_at

    running.state, running.power_state = Desktop.State.RUNNING, Desktop.Power.RUNNING
    running.save()
    hooks.desktop_changed(desktop=running, at=started_at, reason="started")

    cursor = MeterCursor.objects.get(pk=running.pk)
    assert (cursor.since, cursor.vcpus, cursor.ram_mib, cursor.disk_gib) == (started_at, 4, 8192, 40 + 10)
    stopped = UsageInterval.objects.get(desktop=running, start=stopped_at)
    assert (stopped.end, stopped.running, stopped.vcpus, stopped.disk_gib) == (started_at, False, 0, 40 + 10)


def _shape(desktop_ids) -> list[tuple]:
    """What the meters hold for these desktops, in their order, without the ids."""
    cursors = {c.desktop_id: c for c in MeterCursor.objects.filter(desktop_id__in=desktop_ids)}
    result = []
    for pk in desktop_ids:
        cursor = cursors.get(pk)
        pieces = UsageInterval.objects.filter(desktop_id=pk).order_by("start")
        result.append(
            (
                None if cursor is None else tuple(getattr(cursor, name) for name in HELD[3:]) + (cursor.since,),
                [(p.start, p.end, p.duration_us, p.vcpus, p.disk_gib, p.ips) for p in pieces],
            )
        )
    return result


def _fleet(scenario) -> list[Desktop]:
    """Desktops in the shapes a takeover meets: new running, new stopped, one already metered and
    changed, one already metered and unchanged, one gone, one with a disk and an elastic IP."""
    tenant = scenario.tenant_a
    desktops = [
        desktop_row(tenant, state="running", power="running"),
        desktop_row(tenant, state="stopped", power="stopped"),
        desktop_row(tenant, state="running", power="running"),
        desktop_row(tenant, state="running", power="running"),
        desktop_row(tenant, state="running", power="running"),
        desktop_row(tenant, state="running", power="running", guest_ip="10.9.0.7"),
    ]
    Volume.objects.create(desktop=desktops[5], name="data", size_gib=100, state=Volume.State.ATTACHED)
    for desktop in desktops[2:5]:
        services.desktop_changed(desktop=desktop, at=T0, reason="provisioned")
    desktops[2].vcpus = 8
    desktops[2].save()
    desktops[4].state = "deleted"
    desktops[4].save()
    return desktops


def test_a_batch_report_meters_exactly_what_one_report_per_desktop_does(scenario, django_assert_max_num_queries):
    singles = _fleet(scenario) + _fleet(scenario)
    with transaction.atomic():
        for desktop in singles:
            hooks.desktop_changed(desktop=desktop, at=T1, reason="imported")

    batch = _fleet(scenario) + _fleet(scenario)
    # A handful of statements for the whole batch (the per-desktop path takes ~6 per desktop).
    with django_assert_max_num_queries(14), transaction.atomic():
        hooks.desktops_changed(desktops=batch, at=T1, reason="imported")

    assert _shape([d.pk for d in batch]) == _shape([d.pk for d in singles])
    expected = _shape([d.pk for d in batch])
    assert expected[0][0][:5] == (True, 2, 4096, 40, 0)  # new and running: opened at T1
    assert expected[1][0][:5] == (False, 0, 0, 40, 0)  # stopped: its disk only
    assert expected[2][1] and expected[2][0][1] == 8  # changed: the hours at 2 vCPUs written, now 8
    assert expected[3][0][-1] == T0 and not expected[3][1]  # unchanged: nothing written
    assert expected[4][0] is None and expected[4][1]  # gone: closed
    assert (expected[5][0][3], expected[5][0][5]) == (140, 1)  # system disk + data disk, its address

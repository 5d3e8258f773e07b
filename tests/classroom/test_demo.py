"""The classroom's demo (#13.11): CS101 meets Monday and Wednesday, so the demo's desktops, seeded on
a Thursday, are made stopped and billed for no running hour; the schedule powers them on before
Monday's class. On libvirt's test driver, tasks in-process."""

import datetime

import pytest
import time_machine

from billing.models import MeterCursor
from compute import demo as compute_demo
from compute.classroom import demo as classroom_demo
from compute.classroom.models import DesktopPool
from compute.classroom.tasks import schedule_tick
from compute.models import Desktop
from tenants import demo as tenants_demo
from tests.classroom.conftest import at

THURSDAY = datetime.date(2026, 12, 3)
NEXT_MONDAY = datetime.date(2026, 12, 7)


@pytest.fixture
def demo_on_a_thursday(db, settings, eager, django_capture_on_commit_callbacks):
    settings.DEFAULT_HYPERVISOR_URI = "test:///default"
    with time_machine.travel(at(THURSDAY, 10), tick=False):
        tenants_demo.seed()
        compute_demo.seed()
        with django_capture_on_commit_callbacks(execute=True):
            summary = classroom_demo.seed()
    return DesktopPool.objects.get(pk=summary["pool"])


def test_the_demos_desktops_seeded_on_a_thursday_are_made_stopped_and_bill_no_running_hour(demo_on_a_thursday):
    desktops = Desktop.objects.filter(seat__pool=demo_on_a_thursday)
    assert desktops.count() == 30
    assert set(desktops.values_list("state", flat=True)) == {Desktop.State.STOPPED}
    # Metered from their creation: their disks are held, no vCPU or memory is.
    cursors = MeterCursor.objects.filter(desktop__in=desktops)
    assert cursors.count() == 30 == cursors.filter(disk_gib__gt=0).count()
    assert not cursors.filter(running=True).exists()
    assert set(cursors.values_list("vcpus", "ram_mib")) == {(0, 0)}


def test_the_schedule_powers_the_demo_on_before_mondays_class(demo_on_a_thursday, django_capture_on_commit_callbacks):
    with time_machine.travel(at(NEXT_MONDAY, 7, 50), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert schedule_tick.apply().get()["powered_on"] == 30  # 08:00 class, 15 minutes' lead
    states = Desktop.objects.filter(seat__pool=demo_on_a_thursday).values_list("state", flat=True)
    assert set(states) == {Desktop.State.RUNNING}


def test_a_seeding_cut_short_is_taken_up_again_by_the_next_one(
    db, settings, eager, django_capture_on_commit_callbacks, monkeypatch
):
    """MariaDB may pick the seeding as a deadlock victim beside a live worker: seed_demo is run again,
    and the seats left without a desktop get theirs then."""
    from django.db import OperationalError

    from compute import services as compute_services

    settings.DEFAULT_HYPERVISOR_URI = "test:///default"
    real_create, calls = compute_services.desktops_create, []

    def deadlocked_after_one_batch(**kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock")
        return real_create(**kwargs)

    with time_machine.travel(at(THURSDAY, 10), tick=False):
        tenants_demo.seed()
        compute_demo.seed()
        monkeypatch.setattr(compute_services, "desktops_create", deadlocked_after_one_batch)
        with pytest.raises(OperationalError), django_capture_on_commit_callbacks(execute=True):
            classroom_demo.seed()
        monkeypatch.setattr(compute_services, "desktops_create", real_create)
        pool = DesktopPool.objects.get()
        assert pool.seats.filter(desktop__isnull=False).count() == 10  # the first batch of seats
        with django_capture_on_commit_callbacks(execute=True):
            classroom_demo.seed()

    assert pool.seats.filter(desktop__isnull=True).count() == 0
    assert Desktop.objects.filter(seat__pool=pool, state=Desktop.State.STOPPED).count() == 30

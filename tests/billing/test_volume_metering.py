"""A data disk outlives its desktop: while detached it is metered on its own, through compute's volume services
and ``compute.hooks.volume_changed``; while attached, as part of its desktop. Never both, never neither.

The services run as the worker would run them: the hypervisor's part (the Celery task, queued on commit,
which never commits in these tests) is replaced by calling ``volume_finish`` with what the task reports.
The clock is moved with time-machine, so hours pass in an instant and quantities are exact.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing import metering, services
from billing.models import Invoice, Item, MeterCursor, UsageInterval, VolumeMeterCursor
from billing.selectors import month_drafts, usage_report_for
from compute import hooks
from compute import services as compute
from compute.models import Desktop, Volume
from tests.billing.conftest import desktop_row, plan

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 10, 12, 9, 0, tzinfo=SHANGHAI)
HOUR = timedelta(hours=1)
US_PER_HOUR = 3_600_000_000
SIZE = 25
SYSTEM = 40
pytestmark = pytest.mark.django_db


def running_desktop(scenario, course=None) -> Desktop:
    desktop = desktop_row(
        scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running", disk_gib=SYSTEM
    )
    hooks.desktop_changed(desktop=desktop, at=T0, reason="provisioned")
    return desktop


def attached_volume(scenario, desktop) -> Volume:
    """A data disk made and attached before T0 (metered by its desktop from T0 on)."""
    volume = Volume.objects.create(
        desktop=desktop,
        tenant=desktop.tenant,
        owner=desktop.owner,
        endpoint=desktop.endpoint,
        name="data",
        size_gib=SIZE,
        pool="default",
        volume_name="cc-vol-bill-0001.qcow2",
        path="/var/lib/libvirt/images/cc-vol-bill-0001.qcow2",
        target="vdb",
        state=Volume.State.ATTACHED,
    )
    hooks.desktop_changed(desktop=desktop, at=T0, reason="volume_attached")
    return volume


def finish(at, **task_result) -> Volume:
    """``volume_finish`` as the worker calls it at ``at``; it settles the desktop in a transaction of its own,
    which here commits a second later, so a meter that waited for the desktop to settle would be a second off."""
    settle = compute.desktop_settle
    with time_machine.travel(at, tick=False) as clock:

        def settle_later(**kwargs):
            clock.shift(timedelta(seconds=1))
            return settle(**kwargs)

        with mock.patch.object(compute.volumes, "desktop_settle", settle_later):
            return compute.volume_finish(**task_result)


def detach(actor, volume, *, at) -> Volume:
    with time_machine.travel(at, tick=False):
        compute.volume_detach(actor=actor, volume=volume)
    # The worker answers 20 s later.
    return finish(at + timedelta(seconds=20), volume_id=volume.pk, op="detach", target="vdb", path=volume.path)


def attach(actor, volume, desktop, *, at) -> Volume:
    with time_machine.travel(at, tick=False):
        compute.volume_attach_existing(actor=actor, desktop=desktop, volume=volume)
    return finish(at + timedelta(seconds=20), volume_id=volume.pk, op="attach", target="vdc", path=volume.path)


def delete(actor, volume, *, at) -> Volume:
    with time_machine.travel(at, tick=False):
        compute.volume_delete(actor=actor, volume=volume)
    return finish(at + timedelta(seconds=20), volume_id=volume.pk, op="delete")


def disk_us(queryset) -> int:
    return sum(p.disk_gib * p.duration_us for p in queryset)


def test_a_disk_detached_for_three_hours_then_deleted_is_charged_exactly_three_hours_of_its_size(scenario, course):
    desktop = running_desktop(scenario, course)
    volume = attached_volume(scenario, desktop)

    volume = detach(scenario.student, volume, at=T0 + HOUR)
    detached_at = T0 + HOUR + timedelta(seconds=20)
    assert volume.state == Volume.State.DETACHED
    cursor = VolumeMeterCursor.objects.get(pk=volume.pk)
    assert (cursor.since, cursor.disk_gib, cursor.tenant_id, cursor.user_id) == (
        detached_at,
        SIZE,
        scenario.tenant_a.pk,
        scenario.student.pk,
    )
    assert MeterCursor.objects.get(pk=desktop.pk).disk_gib == SYSTEM  # the desktop no longer counts it

    # Deleting takes the worker 20 s too: the disk exists (and is charged) until it is gone.
    delete(scenario.student, volume, at=detached_at + 3 * HOUR - timedelta(seconds=20))
    assert Volume.objects.get(pk=volume.pk).state == Volume.State.DELETED
    assert not VolumeMeterCursor.objects.filter(pk=volume.pk).exists()

    own = UsageInterval.objects.filter(volume=volume)
    assert disk_us(own) == 3 * SIZE * US_PER_HOUR
    assert {(p.tenant_id, p.course_id, p.user_id, p.desktop_id) for p in own} == {
        (scenario.tenant_a.pk, None, scenario.student.pk, None)
    }
    assert all(p.vcpus == p.ram_mib == p.gpus == p.ips == 0 for p in own)
    # The desktop carried the disk up to the instant it was detached, not a microsecond more.
    with_disk = UsageInterval.objects.filter(desktop=desktop, disk_gib=SYSTEM + SIZE)
    assert disk_us(with_disk) == (SYSTEM + SIZE) * metering.duration_us(T0, detached_at)
    assert max(p.end for p in with_disk) == detached_at == min(p.start for p in own)


def test_a_disk_moved_to_another_desktop_has_no_gap_and_no_overlap(scenario, course):
    first = running_desktop(scenario, course)
    second = running_desktop(scenario, course)
    volume = attached_volume(scenario, first)

    detach(scenario.student, volume, at=T0 + HOUR)
    volume = attach(scenario.student, Volume.objects.get(pk=volume.pk), second, at=T0 + 5 * HOUR)
    assert (volume.state, volume.desktop_id) == (Volume.State.ATTACHED, second.pk)
    assert not VolumeMeterCursor.objects.filter(pk=volume.pk).exists()
    assert MeterCursor.objects.get(pk=second.pk).disk_gib == SYSTEM + SIZE
    end = T0 + 10 * HOUR
    services.usage_close_until(until=end)

    detached_at, attached_at = T0 + HOUR + timedelta(seconds=20), T0 + 5 * HOUR + timedelta(seconds=20)
    own = list(UsageInterval.objects.filter(volume=volume).order_by("start"))
    # Held on its own while attaching too: the disk exists, no desktop counts it until it is attached.
    assert (own[0].start, own[-1].end) == (detached_at, attached_at)
    desktops = UsageInterval.objects.filter(desktop__in=[first, second])
    # Everything metered as disk, less the two system disks, is the data disk held once from T0 to the end.
    assert disk_us(desktops) + disk_us(own) - 2 * SYSTEM * metering.duration_us(T0, end) == SIZE * metering.duration_us(
        T0, end
    )
    # And at no instant by two meters: its three holders' intervals follow one another.
    holders = [
        (p.start, p.end)
        for p in [*UsageInterval.objects.filter(desktop__in=[first, second], disk_gib=SYSTEM + SIZE), *own]
    ]
    holders.sort()
    assert all(a_end == b_start for (_, a_end), (b_start, _) in zip(holders, holders[1:], strict=False))
    assert (holders[0][0], holders[-1][1]) == (T0, end)


def test_the_same_volume_state_reported_twice_counts_once(scenario):
    desktop = running_desktop(scenario)
    volume = attached_volume(scenario, desktop)
    detach(scenario.student, volume, at=T0 + HOUR)
    volume.refresh_from_db()
    # A redelivered task reports the same row again, later: nothing is written, the interval stays open.
    hooks.volume_changed(volume=volume, at=T0 + 2 * HOUR, reason="detached", desktop_id=desktop.pk)
    hooks.volume_changed(volume=volume, at=T0 + 3 * HOUR, reason="detached")
    cursor = VolumeMeterCursor.objects.get(pk=volume.pk)
    assert cursor.since == T0 + HOUR + timedelta(seconds=20)
    assert not UsageInterval.objects.filter(volume=volume).exists()
    assert MeterCursor.objects.get(pk=desktop.pk).since == T0 + HOUR + timedelta(seconds=20)


def test_a_detached_disk_is_its_own_invoice_line_at_the_disk_rate(scenario, course):
    plan(scenario.finance, scenario.tenant_a, date(2026, 10, 1), disk="0.0100", vcpu="0.1000")
    desktop = running_desktop(scenario, course)
    volume = attached_volume(scenario, desktop)
    detach(scenario.student, volume, at=T0 + HOUR)
    delete(scenario.student, Volume.objects.get(pk=volume.pk), at=T0 + 7 * HOUR)  # 6 hours detached

    result = services.invoices_issue(
        month="2026-10", actor=scenario.finance, now=datetime(2026, 11, 2, tzinfo=SHANGHAI)
    )
    assert len(result.issued) == 1
    invoice = Invoice.objects.get(number=result.issued[0])
    lines = {(line.course_id, line.item): line for line in invoice.lines.all()}
    # The volume keeps its tenant and user but no course: a line of its own, "no course", disk.
    line = lines[(None, Item.DISK)]
    assert (line.quantity, line.rate, line.amount) == (Decimal(SIZE * 6), Decimal("0.0100"), Decimal("1.50"))
    assert lines[(course.pk, Item.DISK)].quantity > 0  # the desktop's system disk, on the course's lines as before
    assert invoice.total == sum((line.amount for line in lines.values()), Decimal("0"))


def test_the_running_estimate_counts_a_detached_disk_up_to_now(scenario):
    plan(scenario.finance, scenario.tenant_a, date(2026, 10, 1), disk="0.0100")
    volume = attached_volume(scenario, running_desktop(scenario))
    detach(scenario.student, volume, at=T0 + HOUR)
    now = T0 + 3 * HOUR + timedelta(seconds=20)  # detached for exactly 2 hours
    [draft] = month_drafts([scenario.tenant_a], now=now)
    [line] = [line for line in draft.lines if line.item == Item.DISK]
    # The desktop (no course either) with its system disk since T0 and the data disk until detached, then the disk.
    want_us = SYSTEM * metering.duration_us(T0, now) + SIZE * metering.duration_us(T0, now)
    want = (Decimal(want_us) / US_PER_HOUR).quantize(Decimal("0.0001"))
    assert line.quantity.quantize(Decimal("0.0001")) == want
    report = usage_report_for(scenario.finance, start=T0.date(), end=T0.date(), group_by="user", now=now)
    [row] = [r for r in report.rows if r.item == Item.DISK]
    assert row.quantity.quantize(Decimal("0.0001")) == want


@pytest.mark.parametrize("state", [Volume.State.ATTACHED, Volume.State.DETACHING, Volume.State.DELETED])
def test_a_volume_a_desktop_counts_or_that_is_gone_holds_nothing_of_its_own(scenario, state):
    desktop = running_desktop(scenario)
    volume = attached_volume(scenario, desktop)
    volume.state = state
    assert metering.volume_allocation_of(volume).billable is False


@pytest.mark.parametrize(
    ("state", "path", "holds"),
    [
        (Volume.State.DETACHED, "/p", True),
        (Volume.State.DELETING, "/p", True),
        (Volume.State.ATTACHING, "/p", True),  # a kept disk on its way to a desktop
        (Volume.State.ATTACHING, "", False),  # a new disk not made yet
        (Volume.State.ERROR, "/p", True),
        (Volume.State.ERROR, "", False),
    ],
)
def test_a_volume_no_desktop_counts_holds_its_size_while_the_disk_exists(scenario, state, path, holds):
    volume = Volume(tenant=scenario.tenant_a, owner=scenario.student, size_gib=SIZE, state=state, path=path)
    assert metering.volume_allocation_of(volume).disk_gib == (SIZE if holds else 0)


def test_a_piece_belongs_to_a_desktop_or_a_volume_never_both(scenario):
    desktop = running_desktop(scenario)
    volume = attached_volume(scenario, desktop)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageInterval.objects.create(
            desktop=desktop,
            volume=volume,
            tenant=scenario.tenant_a,
            day=T0.date(),
            start=T0,
            end=T0 + HOUR,
            duration_us=US_PER_HOUR,
            disk_gib=SIZE,
        )


# --- the property: for any sequence of moves, the disk is counted exactly once while it exists --------------

MOVES = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=30 * US_PER_HOUR),
        st.sampled_from(["detach", "attach_first", "attach_second", "repeat", "sweep", "detach_fails", "delete"]),
    ),
    max_size=12,
)


# The next move starts after the worker answered the last one (20 s, and the desktop settled a second
# later): the clock of one disk never runs backwards.
WORKER_ANSWERED = timedelta(seconds=21)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=MOVES)
@example(moves=[(1, "detach"), (1, "attach_first"), (1, "detach_fails")])  # once made the clock run backwards
def test_a_disk_is_counted_exactly_once_while_it_exists_whatever_it_goes_through(scenario, moves):
    with transaction.atomic():
        first, second = running_desktop(scenario), running_desktop(scenario)
        volume = attached_volume(scenario, first)
        desktops = {"attach_first": first, "attach_second": second}
        at, gone_at = T0, None
        end = T0 + timedelta(days=40)  # across the end of October
        for gap_us, move in moves:
            at = at + timedelta(microseconds=gap_us)
            volume.refresh_from_db()
            if move == "repeat":
                hooks.volume_changed(volume=volume, at=at, reason="again")
            elif move == "sweep":
                services.usage_close_until(until=at)
            elif move == "detach" and volume.state in (Volume.State.ATTACHED, Volume.State.ERROR):
                detach(scenario.student, volume, at=at)
                at += WORKER_ANSWERED
            elif move == "detach_fails" and volume.state == Volume.State.ATTACHED:
                with time_machine.travel(at, tick=False):
                    compute.volume_detach(actor=scenario.student, volume=volume)
                finish(at + timedelta(seconds=5), volume_id=volume.pk, op="detach", error="virDomainDetachDevice: busy")
                at += WORKER_ANSWERED
            elif move in desktops and volume.state == Volume.State.DETACHED:
                attach(scenario.student, volume, desktops[move], at=at)
                at += WORKER_ANSWERED
            elif move == "delete" and volume.state == Volume.State.DETACHED:
                delete(scenario.student, volume, at=at)
                gone_at = at + timedelta(seconds=20)
                break
        services.usage_close_until(until=end)

        system = 2 * SYSTEM * metering.duration_us(T0, end)
        everything = UsageInterval.objects.filter(desktop__in=[first, second]) | UsageInterval.objects.filter(
            volume=volume
        )
        held = metering.duration_us(T0, gone_at or end)
        assert disk_us(everything) - system == SIZE * held
        # No two pieces of the disk's holders overlap, and each lies within one local day.
        pieces = sorted(
            (p.start, p.end)
            for p in everything
            if p.volume_id or p.disk_gib == SYSTEM + SIZE  # the desktop counted the data disk then
        )
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(pieces, pieces[1:], strict=False))
        transaction.set_rollback(True)

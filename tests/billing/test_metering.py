"""Metering from state intervals, on MariaDB: exact integrals, day/month splits, idempotence, crashes."""

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing import metering, services
from billing.models import Item, MeterCursor, UsageInterval
from compute.models import Desktop, Volume
from tests.billing.conftest import desktop_row

SHANGHAI = ZoneInfo("Asia/Shanghai")
OCT_START = datetime(2026, 10, 1, tzinfo=SHANGHAI)
NOV_START = datetime(2026, 11, 1, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Held:
    """The test's own model of what the desktop holds (the oracle)."""

    running: bool = False
    vcpus: int = 2
    ram_mib: int = 4096
    system_gib: int = 40
    volumes: tuple = ()
    gpus: int = 0
    ips: int = 0
    owner: str = "student"
    deleted: bool = False

    def units(self) -> dict:
        if self.deleted:
            return dict.fromkeys(Item, 0)
        run = 1 if self.running else 0
        return {
            Item.VCPU: self.vcpus * run,
            Item.RAM: self.ram_mib * run,
            Item.DISK: self.system_gib + sum(self.volumes),
            Item.GPU: self.gpus * run,
            Item.IP: self.ips,
        }


@dataclass
class Oracle:
    changes: list = field(default_factory=list)  # [(at, Held)]

    def integral(self, start: datetime, end: datetime, owner: str | None = None) -> dict:
        totals = defaultdict(int)
        for (at, held), nxt in zip(self.changes, [*self.changes[1:], (end, None)], strict=True):
            lo, hi = max(at, start), min(nxt[0], end)
            if hi <= lo or (owner and held.owner != owner):
                continue
            for item, amount in held.units().items():
                totals[item] += metering.duration_us(lo, hi) * amount
        return totals


EVENTS = st.one_of(
    st.tuples(st.just("start")),
    st.tuples(st.just("stop")),
    st.tuples(st.just("resize"), st.integers(1, 16), st.sampled_from([1024, 2048, 3072, 8192])),
    st.tuples(st.just("attach"), st.integers(1, 500)),
    st.tuples(st.just("detach")),
    st.tuples(st.just("gpu"), st.integers(0, 2)),
    st.tuples(st.just("ip"), st.integers(0, 2)),
    st.tuples(st.just("transfer")),
    st.tuples(st.just("repeat")),  # the same state change reported twice
    st.tuples(st.just("crash")),  # hypervisor called, worker died before the state update
    st.tuples(st.just("sweep")),  # the nightly sweep (or invoicing) closes open intervals here
)
STEPS = st.lists(
    st.tuples(st.integers(1, 4 * 86_400 * 1_000_000), EVENTS),  # gaps of up to 4 days, microsecond precision
    min_size=1,
    max_size=30,
)
DAY_US = 86_400 * 1_000_000
# A month (any, leap Februaries included), and how far before its 1st and past its end the desktop
# lives: a window that crosses the midnight of the 1st, and often the next month's too.
WINDOWS = st.tuples(st.integers(2024, 2031), st.integers(1, 12), st.integers(0, 3 * DAY_US), st.integers(0, 2 * DAY_US))


@dataclass(frozen=True)
class Window:
    month: date
    begin: datetime
    end: datetime

    @classmethod
    def of(cls, year: int, month: int, lead_us: int, tail_us: int) -> "Window":
        first, following = metering.month_bounds(date(year, month, 1))
        return cls(
            date(year, month, 1),
            first - timedelta(microseconds=lead_us),
            following + timedelta(microseconds=tail_us),
        )

    def months(self) -> list[tuple[datetime, datetime]]:
        """Bounds of each local month the window touches."""
        bounds, day = [], self.begin.astimezone(SHANGHAI).date().replace(day=1)
        while metering.month_bounds(day)[0] < self.end:
            bounds.append(metering.month_bounds(day))
            day = (day + timedelta(days=32)).replace(day=1)
        return bounds


def _apply(desktop: Desktop, held: Held, users: dict) -> None:
    """Write the oracle's state onto the rows, as compute's services would."""
    desktop.state = (
        Desktop.State.DELETED if held.deleted else (Desktop.State.RUNNING if held.running else Desktop.State.STOPPED)
    )
    desktop.power_state = Desktop.Power.RUNNING if held.running and not held.deleted else Desktop.Power.STOPPED
    desktop.vcpus, desktop.memory_mib, desktop.gpus = held.vcpus, held.ram_mib, held.gpus
    desktop.hardware = {"nics": [{"ip": f"10.0.0.{n + 1}"} for n in range(held.ips)]}
    desktop.owner = users[held.owner]
    desktop.save()
    attached = list(desktop.volumes.filter(state=Volume.State.ATTACHED).order_by("pk"))
    while len(attached) > len(held.volumes):
        volume = attached.pop()
        volume.state = Volume.State.DETACHED
        volume.save()
    for size in held.volumes[len(attached) :]:
        Volume.objects.create(desktop=desktop, name=f"d{size}", size_gib=size, state=Volume.State.ATTACHED)


def _next(held: Held, event: tuple) -> Held:
    kind = event[0]
    if kind == "start":
        return replace(held, running=True)
    if kind == "stop":
        return replace(held, running=False)
    if kind == "resize":
        return replace(held, vcpus=event[1], ram_mib=event[2])
    if kind == "attach":
        return replace(held, volumes=(*held.volumes, event[1]))
    if kind == "detach":
        return replace(held, volumes=held.volumes[:-1])
    if kind == "gpu":
        return replace(held, gpus=event[1])
    if kind == "ip":
        return replace(held, ips=event[1])
    if kind == "transfer":
        return replace(held, owner="student2" if held.owner == "student" else "student")
    return held


def _nonzero(totals: dict) -> dict:
    return {str(k): v for k, v in totals.items() if v}


def _metered(queryset) -> dict:
    totals = defaultdict(int)
    for row in queryset.values(*metering.ALLOCATION_FIELDS).annotate(duration_us=Sum("duration_us")):
        for item, units in metering.unit_microseconds(row).items():
            totals[item] += units
    return totals


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(window=WINDOWS, steps=STEPS, delete_at_end=st.booleans())
# A leap February: running from 23:00 on the 28th across the 29th and into March.
@example(
    window=(2028, 2, 3_600_000_000, DAY_US),
    steps=[(28 * DAY_US, ("start",)), (2 * DAY_US, ("stop",))],
    delete_at_end=False,
)
# Starting on the very midnight of the 1st, a change in its first microsecond.
@example(window=(2027, 1, 0, 0), steps=[(1, ("start",)), (DAY_US, ("sweep",))], delete_at_end=True)
def test_metered_quantities_equal_the_exact_integral_for_any_sequence_of_changes(
    scenario, window, steps, delete_at_end
):
    window = Window.of(*window)
    begin, end = window.begin, window.end
    last = end - timedelta(seconds=1)
    users = {"student": scenario.student, "student2": scenario.student2}
    with transaction.atomic():
        desktop = desktop_row(scenario.tenant_a, owner=scenario.student)
        oracle = Oracle()
        held = Held(system_gib=desktop.disk_gib)
        services.desktop_usage_record(desktop=desktop, at=begin, reason="created")  # provisioning: disk held
        oracle.changes.append((begin, held))
        at = begin
        for gap_us, event in steps:
            at = min(at + timedelta(microseconds=gap_us), last)
            if event[0] == "crash":
                # The hypervisor acted, the worker died: the database (and so the meter) never heard.
                # A retry later reports the unchanged row: nothing may be counted twice.
                services.desktop_usage_record(desktop=Desktop.objects.get(pk=desktop.pk), at=at, reason="retry")
                continue
            if event[0] == "sweep":
                services.usage_close_until(until=at)
                continue
            if event[0] == "repeat":
                services.desktop_usage_record(desktop=Desktop.objects.get(pk=desktop.pk), at=at, reason="again")
                continue
            held = _next(held, event)
            _apply(desktop, held, users)
            services.desktop_usage_record(desktop=Desktop.objects.get(pk=desktop.pk), at=at, reason=event[0])
            oracle.changes.append((at, held))
            # The same change applied twice (a retried task) counts once.
            services.desktop_usage_record(desktop=Desktop.objects.get(pk=desktop.pk), at=at, reason=event[0])
        if delete_at_end:
            at = min(at + timedelta(hours=1), last)
            held = replace(held, deleted=True)
            _apply(desktop, held, users)
            services.desktop_usage_record(desktop=Desktop.objects.get(pk=desktop.pk), at=at, reason="deleted")
            oracle.changes.append((at, held))

        # Invoicing the month closes what is open at its end first; then the window's end.
        services.usage_close_until(until=metering.month_bounds(window.month)[1])
        services.usage_close_until(until=end)
        services.usage_close_until(until=end)  # closing twice writes nothing more

        mine = UsageInterval.objects.filter(desktop=desktop)
        assert _nonzero(_metered(mine)) == _nonzero(oracle.integral(begin, end))
        # Each month the window touches is charged its own part, to the microsecond.
        for first, following in window.months():
            part = mine.filter(day__gte=first.date(), day__lt=following.date())
            want = oracle.integral(max(first, begin), min(following, end))
            assert _nonzero(_metered(part)) == _nonzero(want), first
        for who, user in users.items():
            want = oracle.integral(begin, end, owner=who)
            assert _nonzero(_metered(mine.filter(user=user))) == _nonzero(want), who
        # No piece crosses a local midnight, pieces never overlap.
        pieces = list(mine.order_by("start").values_list("start", "end", "day"))
        for (start, stop, day), following in zip(pieces, [*pieces[1:], None], strict=True):
            assert start.astimezone(SHANGHAI).date() == day
            assert stop <= metering.local_midnight(day + timedelta(days=1))
            if following:
                assert stop <= following[0]
        transaction.set_rollback(True)


def test_a_day_is_cut_at_local_midnight_and_the_month_boundary():
    start = datetime(2026, 10, 31, 22, 30, tzinfo=SHANGHAI)
    end = datetime(2026, 11, 1, 1, 15, tzinfo=SHANGHAI)
    pieces = metering.split_by_day(start, end)
    assert [(d.isoformat(), metering.duration_us(s, e)) for d, s, e in pieces] == [
        ("2026-10-31", 90 * 60 * 1_000_000),
        ("2026-11-01", 75 * 60 * 1_000_000),
    ]


@pytest.mark.django_db
def test_a_running_desktop_across_the_first_is_charged_in_both_months(scenario):
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, state="running", power="running", vcpus=4)
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 31, 23, 0, tzinfo=SHANGHAI))

    services.usage_close_until(until=NOV_START)
    services.usage_close_until(until=datetime(2026, 11, 1, 2, 0, tzinfo=SHANGHAI))

    october = _metered(UsageInterval.objects.filter(day__lt=NOV_START.date()))
    november = _metered(UsageInterval.objects.filter(day__gte=NOV_START.date()))
    assert october[Item.VCPU] == 4 * metering.US_PER_HOUR
    assert november[Item.VCPU] == 2 * 4 * metering.US_PER_HOUR
    assert MeterCursor.objects.get(pk=desktop.pk).since == datetime(2026, 11, 1, 2, 0, tzinfo=SHANGHAI)


@pytest.mark.django_db
def test_usage_belongs_to_the_course_and_owner_at_the_time(scenario, course):
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, course=course, state="stopped", power="stopped")
    services.desktop_usage_record(desktop=desktop, at=OCT_START)
    desktop.owner, desktop.course = scenario.student2, None
    desktop.save()
    services.desktop_usage_record(desktop=desktop, at=OCT_START + timedelta(hours=5))
    services.usage_close_until(until=OCT_START + timedelta(hours=8))

    by_owner = dict(UsageInterval.objects.values_list("user__username").annotate(us=Sum("duration_us")).order_by())
    assert by_owner == {"a_student": 5 * metering.US_PER_HOUR, "a_student2": 3 * metering.US_PER_HOUR}
    assert set(UsageInterval.objects.filter(user=scenario.student).values_list("course", flat=True)) == {course.pk}


@pytest.mark.django_db
def test_a_desktop_that_failed_to_provision_holds_nothing(scenario):
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student)
    services.desktop_usage_record(desktop=desktop, at=OCT_START)
    desktop.state, desktop.quota_reservation = Desktop.State.ERROR, ""
    desktop.save()
    services.desktop_usage_record(desktop=desktop, at=OCT_START + timedelta(minutes=30))
    services.usage_close_until(until=NOV_START)

    assert UsageInterval.objects.get().duration_us == 30 * 60 * 1_000_000

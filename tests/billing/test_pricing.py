"""Pricing cuts usage only where a rate changes, and that is the same, to the fraction of a fen, as cutting
it at every hour and pricing each hour at the rate in force when it starts (hypothesis, on MariaDB)."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import pricing, services
from billing.models import Item, UsageInterval
from tests.billing.conftest import desktop_row, plan

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONTH = date(2026, 10, 1)
START = datetime(2026, 10, 1, tzinfo=SHANGHAI)
HOURS = 31 * 24
RATES = st.decimals(min_value=0, max_value=10, places=4)

# Rate changes of cs on whole hours and runs of the desktop at any microsecond, in the same few days of
# October (so that runs often span a change), plus the odd run or change anywhere in the month.
SPAN = 3 * 24
CHANGES = st.dictionaries(st.one_of(st.integers(1, SPAN), st.integers(1, HOURS - 1)), RATES, max_size=4)
RUNS = st.lists(
    st.tuples(
        st.one_of(st.integers(0, SPAN * 3600 * 10**6), st.integers(0, HOURS * 3600 * 10**6)),
        st.integers(1, 30 * 3600 * 10**6),
    ),
    min_size=1,
    max_size=6,
)


def hourly_cost(runs, rates: list[tuple[datetime, Decimal]], vcpus: int) -> Fraction:
    """The oracle: each run cut at every hour, each hour at the rate in force at its start."""
    total = Fraction(0)
    for run_start, run_end in runs:
        cursor = run_start
        while cursor < run_end:
            hour_end = cursor.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            piece_end = min(hour_end, run_end)
            rate = [r for at, r in rates if at <= cursor][-1]
            seconds = Fraction((piece_end - cursor) // timedelta(microseconds=1), 3_600_000_000)
            total += seconds * vcpus * Fraction(rate)
            cursor = piece_end
    return total


def merged(runs) -> list[tuple[datetime, datetime]]:
    """Runs as [start, end) instants within October, overlapping ones joined."""
    end_of_month = START + timedelta(hours=HOURS)
    spans = sorted(
        (START + timedelta(microseconds=a), min(START + timedelta(microseconds=a + length), end_of_month))
        for a, length in runs
    )
    out = []
    for lo, hi in spans:
        if lo >= hi:
            continue
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=RATES, changes=CHANGES, runs=RUNS, vcpus=st.integers(1, 8))
def test_pricing_at_rate_changes_equals_pricing_every_hour(scenario, base, changes, runs, vcpus):
    runs = merged(runs)
    with transaction.atomic():
        plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu=base)
        rates = [(START - timedelta(days=300), base)]
        for hour, rate in sorted(changes.items()):
            plan(scenario.sysadmin, scenario.tenant_a, START + timedelta(hours=hour), vcpu=rate)
            rates.append((START + timedelta(hours=hour), rate))
        desktop = desktop_row(
            scenario.tenant_a, owner=scenario.student, state="stopped", power="stopped", vcpus=vcpus, disk_gib=0
        )
        desktop.hardware = {"nics": [{"ip": "10.0.0.1"}]}  # one address: the desktop is metered all along
        desktop.save()
        services.desktop_usage_record(desktop=desktop, at=START)
        for lo, hi in runs:
            desktop.state = desktop.power_state = "running"
            desktop.save()
            services.desktop_usage_record(desktop=desktop, at=lo)
            desktop.state = desktop.power_state = "stopped"
            desktop.save()
            services.desktop_usage_record(desktop=desktop, at=hi)
        services.usage_close_until(until=START + timedelta(hours=HOURS))

        rows = pricing.usage_rows(
            UsageInterval.objects.filter(tenant=scenario.tenant_a),
            "course_id",
            first=MONTH,
            following=date(2026, 11, 1),
        )
        draft = pricing.draft_for(tenant=scenario.tenant_a, month=MONTH, rows=rows)
        vcpu_lines = [line for line in draft.lines if line.item == Item.VCPU]
        priced = sum(
            (pricing.cost_of(line.units, line.item, line.rate, line.discount_percent) for line in vcpu_lines),
            Fraction(0),
        )

        assert priced == hourly_cost(runs, rates, vcpus)
        assert sum(line.units for line in vcpu_lines) == vcpus * sum(
            (hi - lo) // timedelta(microseconds=1) for lo, hi in runs
        )
        # One line per run of one rate: consecutive lines always differ in rate.
        assert all(a.rate != b.rate for a, b in zip(vcpu_lines, vcpu_lines[1:], strict=False))
        transaction.set_rollback(True)

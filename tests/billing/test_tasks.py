"""Billing's periodic tasks on a real Celery worker: last month's invoices, and the nightly interval sweep."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import metering, services, tasks
from billing.models import Invoice, MeterCursor, UsageInterval
from tests.billing.conftest import desktop_row


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_issues_last_months_invoices_once(scenario, celery_worker):
    last_month_start = metering.local_midnight((timezone.localdate().replace(day=1) - timedelta(days=1)).replace(day=1))
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, state="stopped", power="stopped")
    services.desktop_usage_record(desktop=desktop, at=last_month_start + timedelta(days=3))

    tasks.issue_last_month.delay()
    assert _wait_for(lambda: Invoice.objects.filter(tenant=scenario.tenant_a).exists())
    tasks.issue_last_month.delay()
    tasks.close_open_intervals.delay()

    this_month = metering.local_midnight(timezone.localdate().replace(day=1))
    today = metering.local_midnight(timezone.localdate())
    assert _wait_for(lambda: MeterCursor.objects.get(pk=desktop.pk).since == today)
    assert Invoice.objects.filter(tenant=scenario.tenant_a).count() == 1
    # The open interval was cut at the month boundary when invoicing, then at today's midnight: no gap, no overlap.
    pieces = list(UsageInterval.objects.filter(desktop=desktop).order_by("start").values_list("start", "end"))
    assert pieces[0][0] == last_month_start + timedelta(days=3) and pieces[-1][1] == today
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
    assert this_month in [start for start, _end in pieces]

"""Thin Celery tasks of billing: the monthly invoices, budget checks, and the open-interval sweep."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from billing import metering, services


@shared_task
def issue_last_month() -> dict:
    """On the 1st: issue last month's invoices (idempotent, so a rerun or a late beat is harmless)."""
    last_month = timezone.localdate().replace(day=1) - timedelta(days=1)
    result = services.invoices_issue(month=last_month.replace(day=1))
    return {"issued": result.issued, "skipped": result.skipped}


@shared_task
def check_budgets() -> int:
    return len(services.budgets_check())


@shared_task
def close_open_intervals() -> int:
    """Write open intervals up to today's local midnight (where they are cut anyway: no extra rows)."""
    return services.usage_close_until(until=metering.local_midnight(timezone.localdate()))

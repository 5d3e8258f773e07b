"""Celery tasks of tenants: thin wrappers around services."""

from celery import shared_task

from tenants.quotas import quota_recount


@shared_task(name="tenants.tasks.quota_recount")
def quota_recount_task() -> dict:
    """Nightly: quota counters agree with the reservations (idempotent)."""
    return quota_recount()

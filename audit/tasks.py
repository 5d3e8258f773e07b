"""Periodic tasks of the audit app (declared in portal/celery.py)."""

from celery import shared_task

from audit.services import alert_chain_broken, chain_verify


@shared_task
def verify_chain() -> dict:
    """Verify the whole chain; raise the alarm when it is broken."""
    result = chain_verify(source="task")
    if not result.ok:
        alert_chain_broken(result)
    return result.as_json()

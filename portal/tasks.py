"""Periodic housekeeping of the portal app."""

from celery import shared_task

from portal.services import hypervisors_probe as _hypervisors_probe
from portal.services import worker_heartbeat_cleanup


@shared_task
def heartbeat_cleanup() -> int:
    return worker_heartbeat_cleanup()


@shared_task
def hypervisors_probe() -> dict[str, str]:
    return _hypervisors_probe()

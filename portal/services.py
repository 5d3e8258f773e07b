"""Writes of the portal app: worker heartbeats."""

from datetime import timedelta

from django.utils import timezone

from portal.models import WorkerHeartbeat

HEARTBEAT_STALE_AFTER = timedelta(seconds=45)


def worker_heartbeat_record(*, hostname: str, queues: list[str]) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"queues": queues, "last_seen": timezone.now()}
    )


def worker_heartbeat_forget(*, hostname: str) -> None:
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()


def worker_heartbeat_cleanup(*, older_than: timedelta = timedelta(days=1)) -> int:
    deleted, _ = WorkerHeartbeat.objects.filter(last_seen__lt=timezone.now() - older_than).delete()
    return deleted

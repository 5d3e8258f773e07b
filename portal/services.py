"""Writes of the portal app: worker heartbeats, hypervisor probes."""

from datetime import timedelta

from django.utils import timezone

from portal.models import HypervisorProbe, WorkerHeartbeat

HEARTBEAT_STALE_AFTER = timedelta(seconds=45)
# At most one connection per hypervisor endpoint per interval, whoever asks /healthz how often.
PROBE_INTERVAL = timedelta(seconds=30)


def worker_heartbeat_record(*, hostname: str, queues: list[str]) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"queues": queues, "last_seen": timezone.now()}
    )


def worker_heartbeat_forget(*, hostname: str) -> None:
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()


def worker_heartbeat_cleanup(*, older_than: timedelta = timedelta(days=1)) -> int:
    deleted, _ = WorkerHeartbeat.objects.filter(last_seen__lt=timezone.now() - older_than).delete()
    return deleted


def _probe_claim(endpoint: str, now) -> bool:
    """Whether this worker checks `endpoint` now: nobody did within the interval. The row's time moves
    first, in one conditional UPDATE, so two workers (or two beats) never both connect."""
    HypervisorProbe.objects.get_or_create(
        endpoint=endpoint, defaults={"status": "pending", "checked_at": now - PROBE_INTERVAL}
    )
    due = HypervisorProbe.objects.filter(endpoint=endpoint, checked_at__lte=now - PROBE_INTERVAL)
    return due.update(checked_at=now) == 1


def hypervisors_probe() -> dict[str, str]:
    """Check the hypervisor endpoints that are due and keep the results for /healthz (run by the worker)."""
    from compute.health import hypervisor_health, hypervisor_names

    names = hypervisor_names()
    now = timezone.now()
    due = [name for name in names if _probe_claim(name, now)]
    results = hypervisor_health(names=due) if due else {}
    for name, status in results.items():
        HypervisorProbe.objects.filter(endpoint=name).update(status=status[:500], checked_at=timezone.now())
    HypervisorProbe.objects.exclude(endpoint__in=names).delete()
    return results

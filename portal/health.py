"""What /healthz reports: the database, the broker, a live worker and each hypervisor.

The hypervisors are checked by the worker (portal.tasks.hypervisors_probe); /healthz reads the
last results and never opens a hypervisor connection. Without credentials it says only "ok" or
"degraded" per component: no endpoint names, URIs, user names or error strings. A signed-in
system admin gets the reasons.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu import Connection

from portal.models import HypervisorProbe, WorkerHeartbeat
from portal.services import HEARTBEAT_STALE_AFTER, PROBE_INTERVAL

# A probe older than this is reported as stale: the worker that makes them has stopped.
PROBE_STALE_AFTER = PROBE_INTERVAL * 4 + timedelta(seconds=30)


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"error: {exc.__class__.__name__}"
    return "ok"


def check_broker() -> str:
    try:
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2, transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            conn.default_channel  # noqa: B018 - opening a channel is what proves the broker answers
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"
    return "ok"


def check_worker() -> str:
    try:
        alive = WorkerHeartbeat.objects.filter(last_seen__gte=timezone.now() - HEARTBEAT_STALE_AFTER).exists()
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"
    return "ok" if alive else "no worker heartbeat"


def hypervisor_report() -> dict[str, str]:
    """{endpoint: the worker's last result}, "stale" when the worker has not checked it lately."""
    try:
        stale_before = timezone.now() - PROBE_STALE_AFTER
        return {
            probe.endpoint: probe.status if probe.checked_at >= stale_before else "stale"
            for probe in HypervisorProbe.objects.order_by("endpoint")
        }
    except Exception as exc:  # noqa: BLE001 - the database check reports the cause
        return {"*": f"error: {exc.__class__.__name__}"}


def health_report(*, detailed: bool = False) -> tuple[dict, bool]:
    """The report and whether every required part (db, broker, worker) is ok.

    Hypervisors are reported but not required: one unreachable campus must not take the
    whole portal out of the load balancer. Without `detailed`, each component is "ok" or "degraded".
    """
    report = {"db": check_database(), "broker": check_broker(), "worker": check_worker()}
    healthy = all(value == "ok" for value in report.values())
    hypervisors = hypervisor_report()
    if detailed:
        report["hypervisors"] = hypervisors
        return report, healthy
    coarse = {name: "ok" if value == "ok" else "degraded" for name, value in report.items()}
    coarse["hypervisors"] = "ok" if hypervisors and all(v == "ok" for v in hypervisors.values()) else "degraded"
    return coarse, healthy

"""What /healthz reports: the database, the broker, a live worker and each hypervisor."""

from django.db import connection
from django.utils import timezone

from portal.celery import app as celery_app
from portal.models import WorkerHeartbeat
from portal.services import HEARTBEAT_STALE_AFTER


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
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"
    return "ok"


def check_worker() -> str:
    try:
        alive = WorkerHeartbeat.objects.filter(last_seen__gte=timezone.now() - HEARTBEAT_STALE_AFTER).exists()
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"
    return "ok" if alive else "no worker heartbeat"


def health_report() -> tuple[dict, bool]:
    """The report and whether every required part (db, broker, worker) is ok.

    Hypervisors are reported but not required: one unreachable campus must not take the
    whole portal out of the load balancer.
    """
    from compute.health import hypervisor_health

    report = {"db": check_database(), "broker": check_broker(), "worker": check_worker()}
    healthy = all(value == "ok" for value in report.values())
    report["hypervisors"] = hypervisor_health()
    return report, healthy

"""What /healthz reports: the database, the broker, a live worker and each hypervisor."""

from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu import Connection

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

"""The Celery app: task discovery, queues and routes, and the one place periodic tasks live."""

import contextlib
import os

from celery import Celery, bootsteps
from celery.schedules import crontab
from celery.signals import worker_ready, worker_shutdown
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Tasks are idempotent by rule (they check the row's state first), so a task that
    # dies with its worker is simply delivered again.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="default",
    task_queues=[Queue("default"), Queue("hypervisor"), Queue("billing"), Queue("audit")],
    # Hypervisor work can be routed to a site's own queue ("site.<slug>") by the caller;
    # without a site it goes to the shared "hypervisor" queue.
    task_routes={
        "compute.tasks.*": {"queue": "hypervisor"},
        "portal.tasks.hypervisors_probe": {"queue": "hypervisor"},
        "billing.tasks.*": {"queue": "billing"},
        "audit.tasks.*": {"queue": "audit"},
    },
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    timezone="Asia/Shanghai",
    enable_utc=True,
)
app.autodiscover_tasks()


def _ensure_filesystem_broker_folders() -> None:
    """The quick start's filesystem broker needs its folders before anyone sends or consumes."""
    from pathlib import Path

    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
            if folder:
                Path(folder).mkdir(parents=True, exist_ok=True)


app.on_after_configure.connect(lambda sender, **kwargs: _ensure_filesystem_broker_folders(), weak=False)

# Every periodic task of the project, in one place. Apps add their entries here.
app.conf.beat_schedule = {
    "portal-heartbeat-cleanup": {"task": "portal.tasks.heartbeat_cleanup", "schedule": 3600.0},
    # /healthz reports these results; it never connects to a hypervisor itself (at most one check per
    # endpoint per 30 s, portal.services.PROBE_INTERVAL). A probe not taken within 25 s is dropped.
    "portal-hypervisors-probe": {
        "task": "portal.tasks.hypervisors_probe",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # Audit: verify the whole hash chain every night (02:30 Shanghai); a broken chain raises an alert.
    "audit-verify-chain": {"task": "audit.tasks.verify_chain", "schedule": crontab(hour=2, minute=30)},
    # Compute: compare every endpoint's inventory with the database (drift, vanished VMs, orphans).
    "compute-reconcile": {"task": "compute.tasks.inventory.reconcile_all", "schedule": 300.0},
    # Compute nodes: a heartbeat into every host agent's queue (host.<name>); a silent agent shows "agent down".
    "compute-hosts-heartbeat": {"task": "compute.tasks.hosts.hosts_heartbeat_send", "schedule": 30.0},
    "network-hosts-sync": {"task": "compute.tasks.hostnet.hosts_network_sync_send", "schedule": 120.0},
    # HA: probe the hosts, fence a silent one through its BMC, restart its desktops elsewhere (compute/ha/).
    # Each round is idempotent and takes its rows under lock; a round not taken within 10 s is dropped.
    "compute-ha-tick": {
        "task": "compute.tasks.ha.ha_tick",
        "schedule": float(os.environ.get("HA_TICK_SECONDS", "3")),  # settings.HA_TICK_SECONDS, read before Django
        "options": {"expires": 10},
    },
    "classroom-schedule-tick": {"task": "compute.classroom.tasks.schedule_tick", "schedule": 60.0},
    # Load balancing (DRS) of the clusters where it is automatic: at most K migrations each at a time.
    "compute-drs-tick": {"task": "compute.tasks.migration.drs_tick", "schedule": 60.0, "options": {"expires": 55}},
    # Network (compute makes its hypervisor calls): repair DHCP bindings and host-firewall drift on every
    # libvirt endpoint; free addresses whose hold is over.
    "network-dhcp-sync": {"task": "compute.tasks.network.dhcp_sync", "schedule": 300.0},
    "network-addresses-purge": {"task": "compute.tasks.network.addresses_purge", "schedule": 600.0},
    # Tenants: quota counters agree with the reservations (03:10 Shanghai); drift is fixed and audited.
    "tenants-quota-recount": {"task": "tenants.tasks.quota_recount", "schedule": crontab(hour=3, minute=10)},
    # Billing (Asia/Shanghai): open usage intervals written up to midnight (where they are cut
    # anyway), last month's invoices on the 1st, budgets every 15 minutes.
    "billing-close-open-intervals": {
        "task": "billing.tasks.close_open_intervals",
        "schedule": crontab(minute=1, hour=0),
    },
    "billing-issue-invoices": {
        "task": "billing.tasks.issue_last_month",
        "schedule": crontab(minute=30, hour=0, day_of_month=1),
    },
    "billing-check-budgets": {"task": "billing.tasks.check_budgets", "schedule": 900.0},
}

HEARTBEAT_SECONDS = 10.0


class HeartbeatStep(bootsteps.StartStopStep):
    """Writes a row every few seconds so /healthz can tell that a worker is alive.

    A database row works with every broker, including the quick start's filesystem
    transport, where remote control (ping) is not dependable.
    """

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        self.tref = worker.timer.call_repeatedly(HEARTBEAT_SECONDS, _beat, (worker,), priority=10)
        _beat(worker)

    def stop(self, worker):
        if self.tref:
            self.tref.cancel()
            self.tref = None


def _beat(worker):
    from django.db import close_old_connections

    from portal.services import worker_heartbeat_record

    try:
        queues = sorted(q.name for q in worker.app.amqp.queues.consume_from.values())
    except Exception:  # noqa: BLE001 - the queue list is informational
        queues = []
    try:
        worker_heartbeat_record(hostname=worker.hostname, queues=queues)
    finally:
        close_old_connections()


app.steps["worker"].add(HeartbeatStep)


@worker_ready.connect
def _on_ready(sender=None, **kwargs):  # pragma: no cover - logging only
    app.log.get_default_logger().info("CampusCloud worker ready: %s", getattr(sender, "hostname", "?"))


@worker_shutdown.connect
def _on_shutdown(sender=None, **kwargs):
    from portal.services import worker_heartbeat_forget

    # The database may already be gone at shutdown; the row then simply goes stale.
    with contextlib.suppress(Exception):
        worker_heartbeat_forget(hostname=getattr(sender, "hostname", ""))

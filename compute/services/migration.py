"""Writes of live and cold migration: a desktop moved to another host of its cluster, and what its task reports.

``desktop_migrate`` checks the move (system admin; a running or stopped desktop on a compute node; a
target of the same cluster and site, enabled, with the desktop's networks and storage), holds the
desktop ``migrating`` and queues ``compute.tasks.migration.desktop_migration_run`` on the source
site's queue. The task reports back: ``migration_progress`` while data is copied,
``migration_finish`` when the VM runs on the target (the desktop's endpoint and host follow, its
console with them; billing sees one continuous interval, since nothing it meters changed), or
``migration_fail`` (the VM still runs on the source: the desktop is back to running, error noted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.db import retry_on_deadlock
from common.errors import Conflict, InvalidInput, ServiceError
from common.tasks import enqueue
from compute import hooks, locks
from compute.drivers.base import VMInfo
from compute.errors import ComputeError
from compute.models import Desktop, DesktopMigration, Endpoint, Host, SharedStorage, StoragePool, Volume
from compute.networking import desktop_addresses, filter_name, nic_network_name
from compute.services.callbacks import apply_vm_info
from compute.services.rules import require_system_admin

if TYPE_CHECKING:
    from tenants.models import User

TASK = "compute.tasks.migration.desktop_migration_run"


def _desktop_pools(desktop: Desktop) -> set[str]:
    pools = {desktop.storage_pool} if desktop.storage_pool else set()
    pools |= set(
        Volume.objects.filter(desktop=desktop, state=Volume.State.ATTACHED)
        .exclude(pool="")
        .values_list("pool", flat=True)
    )
    return pools


def shared_between(desktop: Desktop, source: Host, target: Host) -> bool:
    """Whether every disk of the desktop is on the cluster's shared storage (else they are copied)."""
    storage = SharedStorage.of(source.endpoint.cluster_id)
    pools = _desktop_pools(desktop)
    return storage is not None and pools <= {storage.pool} and target.endpoint.cluster_id == source.endpoint.cluster_id


def missing_on(desktop: Desktop, source: Host, target: Host) -> list[tuple[str, str]]:
    """What ``target`` lacks of what the desktop uses on ``source``: ("network" or "storage", its name)."""
    missing = []
    src, dst = source.endpoint, target.endpoint
    addresses = desktop_addresses(desktop)
    for address in addresses:
        network = address.subnet.network
        if nic_network_name(network, src) != nic_network_name(network, dst) or (
            filter_name(address, src) != filter_name(address, dst)
        ):
            missing.append(("network", _("网络“%(name)s”") % {"name": network.name}))
    if not addresses and src.default_network != dst.default_network:
        missing.append(("network", _("网络“%(name)s”") % {"name": src.default_network}))
    pools = set(StoragePool.objects.filter(endpoint=dst).values_list("name", flat=True))
    for pool in sorted(_desktop_pools(desktop) - pools):
        missing.append(("storage", _("存储池“%(name)s”") % {"name": pool}))
    stopped = desktop.state == Desktop.State.STOPPED or (
        desktop.state == Desktop.State.MIGRATING and desktop.stable_state == Desktop.State.STOPPED
    )
    if stopped and not shared_between(desktop, source, target):
        missing.append(("storage", _("共享存储（已关机的桌面只能在共享存储上离线迁移）")))
    return missing


def _refuse_target(desktop: Desktop, source: Host, target: Host) -> None:
    if target.pk == source.pk:
        raise InvalidInput(_("目标主机就是桌面当前所在的主机。"), code=ComputeError.MIGRATION_HOST_SAME)
    src, dst = source.endpoint, target.endpoint
    if dst.site_id != src.site_id or dst.cluster_id != src.cluster_id:
        raise InvalidInput(
            _("只能迁移到同一站点、同一集群的主机：“%(host)s”属于%(site)s / %(cluster)s。")
            % {"host": target.name, "site": dst.site.name, "cluster": dst.cluster.name},
            code=ComputeError.MIGRATION_OTHER_CLUSTER,
            detail={"host": target.name},
        )
    if target.state != Host.State.ENABLED or not (target.is_active and dst.is_active):
        raise Conflict(
            _("主机“%(host)s”当前为“%(state)s”，不能接收桌面。")
            % {"host": target.name, "state": target.get_state_display()},
            code=ComputeError.MIGRATION_HOST_UNAVAILABLE,
            detail={"host": target.name, "state": target.state},
        )
    missing = missing_on(desktop, source, target)
    if missing:
        labels = [label for _kind, label in missing]
        storage = any(kind == "storage" for kind, _label in missing)
        raise InvalidInput(
            _("主机“%(host)s”缺少：%(missing)s。") % {"host": target.name, "missing": "、".join(labels)},
            code=ComputeError.MIGRATION_STORAGE_MISSING if storage else ComputeError.MIGRATION_NETWORK_MISSING,
            detail={"host": target.name, "missing": labels},
        )


def migration_candidates(desktop: Desktop) -> list[Host]:
    """Hosts the desktop could move to (same cluster and site, enabled, nothing missing), emptiest first."""
    from compute import placement

    source = desktop.host
    if source is None:
        return []
    fitting = placement.migration_fit(desktop=desktop)
    return [h for h in fitting if not missing_on(desktop, source, h)]


def _source_of(desktop: Desktop) -> Host:
    source = desktop.host
    if source is None or desktop.endpoint.kind != Endpoint.Kind.LIBVIRT:
        raise InvalidInput(_("该桌面不在计算节点上，不能由平台迁移。"), code=ComputeError.MIGRATION_UNSUPPORTED)
    if desktop.gpus:
        raise InvalidInput(_("使用 GPU 直通或 vGPU 的桌面不能迁移。"), code=ComputeError.MIGRATION_UNSUPPORTED)
    return source


def _choose_target(desktop: Desktop, source: Host, host: Host | None) -> Host:
    if host is not None:
        _refuse_target(desktop, source, host)
        return host
    candidates = migration_candidates(desktop)
    if not candidates:
        raise InvalidInput(
            _("集群“%(cluster)s”中没有能接收该桌面的其他主机。") % {"cluster": source.endpoint.cluster.name},
            code=ComputeError.NO_HOST,
        )
    return candidates[0]


def desktop_migrate(
    *, actor: User | None, desktop: Desktop, host: Host | None = None, reason: str = DesktopMigration.Reason.ADMIN
) -> DesktopMigration:
    """Move a desktop to ``host`` (None: placement's choice among its cluster's hosts): live when it runs,
    cold (its definition only, on shared storage) when it is stopped. Returns the queued migration."""
    if actor is not None:
        require_system_admin(actor)
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop.pk)
        desktop = Desktop.objects.select_related("endpoint__site", "endpoint__cluster", "host__endpoint", "tenant").get(
            pk=desktop.pk
        )
        desktop.begin_migration()  # refuses a desktop that is neither running nor stopped
        source = _source_of(desktop)
        if host is not None:
            host = Host.objects.select_related("endpoint__site", "endpoint__cluster").get(pk=host.pk)
        target = _choose_target(desktop, source, host)
        live = desktop.stable_state == Desktop.State.RUNNING
        migration = DesktopMigration.objects.create(
            desktop=desktop,
            source=source,
            target=target,
            source_name=source.name,
            target_name=target.name,
            kind=DesktopMigration.Kind.LIVE if live else DesktopMigration.Kind.COLD,
            copy_storage=not shared_between(desktop, source, target),
            reason=reason,
            requested_by=actor,
        )
        migration.task_id = desktop.task_id = enqueue(TASK, migration.pk, queue=desktop.endpoint.site.celery_queue)
        migration.save(update_fields=["task_id"])
        desktop.save()
        event_record(
            action=Action.DESKTOP_MIGRATION_STARTED,
            actor=actor,
            target=desktop,
            tenant=desktop.tenant,
            detail={
                "migration": migration.pk,
                "from": source.name,
                "to": target.name,
                "kind": migration.kind,
                "copy_storage": migration.copy_storage,
                "reason": reason,
            },
        )
    return migration


def migration_rules_check(*, actor: User) -> None:
    """Migration is the system admin's: anyone else is refused (Forbidden) before anything is read."""
    require_system_admin(actor)


def migration_cancel(*, actor: User | None, migration: DesktopMigration) -> DesktopMigration:
    """Ask the running migration to stop: its task aborts the job and the desktop stays on the source."""
    if actor is not None:
        require_system_admin(actor)
    with transaction.atomic():
        row = locks.migration_lock(migration.pk)
        if row.finished:
            raise Conflict(_("该迁移已经结束。"), code=ComputeError.MIGRATION_NOT_RUNNING)
        row.cancel_requested = True
        row.save(update_fields=["cancel_requested"])
        event_record(
            action=Action.DESKTOP_MIGRATION_CANCELLED,
            actor=actor,
            target=row.desktop,
            tenant=row.desktop.tenant,
            detail={"migration": row.pk, "from": row.source_name, "to": row.target_name},
        )
    return row


def migration_begin(*, migration_id: int) -> bool:
    """The task takes the queued migration; False when it is not queued any more (a duplicate message)."""
    return bool(
        DesktopMigration.objects.filter(pk=migration_id, state=DesktopMigration.State.QUEUED).update(
            state=DesktopMigration.State.RUNNING, started_at=timezone.now()
        )
    )


def migration_progress(*, migration_id: int, data_total: int, data_remaining: int) -> bool:
    """Record how much is left to copy; returns whether a cancellation was asked for."""
    DesktopMigration.objects.filter(pk=migration_id, state=DesktopMigration.State.RUNNING).update(
        data_total=max(0, data_total), data_remaining=max(0, data_remaining)
    )
    return DesktopMigration.objects.filter(pk=migration_id, cancel_requested=True).exists()


@retry_on_deadlock
def migration_finish(*, migration_id: int, info: VMInfo, downtime_ms: int | None, duration_ms: int) -> DesktopMigration:
    """The VM runs (or is defined) on the target: the desktop's endpoint, host and console follow."""
    with transaction.atomic():
        migration = locks.migration_lock(migration_id)
        desktop = locks.desktop_lock(migration.desktop_id)
        target = migration.target
        desktop.migrated(endpoint=target.endpoint, host=target)
        apply_vm_info(desktop, info)
        desktop.save()
        # The same allocation as before: billing's open interval simply goes on.
        hooks.desktop_changed(desktop=desktop, reason="migrated")
        migration.state = DesktopMigration.State.DONE
        migration.downtime_ms, migration.duration_ms = downtime_ms, duration_ms
        migration.data_remaining, migration.finished_at = 0, timezone.now()
        migration.save()
        event_record(
            action=Action.DESKTOP_MIGRATED,
            target=desktop,
            tenant=desktop.tenant,
            detail={
                "migration": migration.pk,
                "from": migration.source_name,
                "to": migration.target_name,
                "downtime_ms": downtime_ms,
                "duration_ms": duration_ms,
            },
        )
    return migration


@retry_on_deadlock
def migration_fail(*, migration_id: int, error: str = "", cancelled: bool = False) -> DesktopMigration:
    """The migration did not happen (failed, or cancelled): the VM is on the source, the desktop as before."""
    with transaction.atomic():
        migration = locks.migration_lock(migration_id)
        desktop = locks.desktop_lock(migration.desktop_id)
        if desktop.state == Desktop.State.MIGRATING:
            reason = str(_("迁移已取消。")) if cancelled else error[:2000]
            desktop.abandon(reason=reason)
            desktop.save()
        migration.state = DesktopMigration.State.CANCELLED if cancelled else DesktopMigration.State.FAILED
        migration.error = error[:2000]
        migration.finished_at = timezone.now()
        migration.save()
        event_record(
            action=Action.DESKTOP_MIGRATION_FAILED,
            target=desktop,
            tenant=desktop.tenant,
            result="failure",
            reason=(error or "cancelled")[:500],
            detail={"migration": migration.pk, "from": migration.source_name, "to": migration.target_name},
        )
    return migration


def migration_refused(*, actor: User | None, desktop: Desktop, source: Host, reason: str, why: str) -> DesktopMigration:
    """A desktop an evacuation could not move: a failed migration row saying why, for the host's page."""
    return DesktopMigration.objects.create(
        desktop=desktop,
        source=source,
        source_name=source.name,
        reason=reason,
        state=DesktopMigration.State.FAILED,
        error=why[:2000],
        requested_by=actor,
        finished_at=timezone.now(),
    )


def host_evacuate(*, actor: User | None, host: Host) -> dict:
    """A host going into maintenance: each of its desktops moves to another host of its cluster (live when
    running, cold when stopped). A desktop that cannot move gets a failed migration row saying why, so
    the host's page lists it; returns ``{"moving": [...], "not_moved": [...]}``."""
    moving, not_moved = [], []
    desktops = (
        Desktop.objects.filter(host=host)
        .exclude(state=Desktop.State.DELETED)
        .select_related("endpoint", "tenant")
        .order_by("pk")
    )
    for desktop in desktops:
        try:
            migration = desktop_migrate(actor=actor, desktop=desktop, reason=DesktopMigration.Reason.MAINTENANCE)
        except ServiceError as exc:
            migration_refused(
                actor=actor, desktop=desktop, source=host, reason=DesktopMigration.Reason.MAINTENANCE, why=exc.message
            )
            not_moved.append({"desktop": desktop.pk, "name": desktop.name, "reason": exc.message})
            continue
        moving.append({"desktop": desktop.pk, "name": desktop.name, "to": migration.target_name})
    with transaction.atomic():
        event_record(
            action=Action.HOST_EVACUATED,
            actor=actor,
            target=host,
            result="success" if not not_moved else "failure",
            detail={"moving": moving, "not_moved": not_moved},
        )
    return {"moving": moving, "not_moved": not_moved}


def evacuation_status(host: Host) -> dict:
    """The evacuation since the host went into maintenance: counts by state and what could not move."""
    rows = list(
        DesktopMigration.objects.filter(source=host, reason=DesktopMigration.Reason.MAINTENANCE)
        .filter(created_at__gte=host.maintenance_since or timezone.now())
        .select_related("desktop")
        .order_by("pk")
    )
    counts = dict.fromkeys(DesktopMigration.State.values, 0)
    for row in rows:
        counts[row.state] += 1
    left = Desktop.objects.filter(host=host).exclude(state=Desktop.State.DELETED).count()
    return {
        "migrations": rows,
        "counts": counts,
        "done": not counts["queued"] and not counts["running"],
        "not_moved": [r for r in rows if r.state in (DesktopMigration.State.FAILED, DesktopMigration.State.CANCELLED)],
        "left": left,
    }

"""HA restart: a fenced host's HA desktops start again on other hosts of its cluster, as themselves.

Each desktop moves under its own lock, in one transaction with its audit event: placement picks the
host (one that uses the same golden image: the cluster's shared storage), its NICs' bindings are pushed
there (same MAC, same IP from the new host's DHCP; security groups as nwfilters; elastic IPs and port
forwards follow), the VM is defined from the database with its system disk on the shared storage (the
same overlay: the disk the desktop had), its data disks are attached again and it is started if it was
running. A desktop whose move fails stays on the fenced host, listed with the reason; nothing half-moved
is committed. A desktop already moved (another round's work) is skipped: running twice is safe.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.models import AuditEvent
from audit.services import event_record
from common.errors import ServiceError
from compute import locks, networking
from compute.drivers.base import DriverError
from compute.hypervisor import driver_for, vm_spec
from compute.models import Desktop, Flavor, Host, StoragePool, Volume
from compute.placement import place

log = logging.getLogger("compute.ha")

# What was running (or on its way there) starts again; what was stopped is defined there, stopped.
RUNNING_STATES = (Desktop.State.RUNNING, Desktop.State.STARTING, Desktop.State.REBOOTING)
MOVABLE_STATES = (*RUNNING_STATES, Desktop.State.STOPPED, Desktop.State.STOPPING, Desktop.State.BUSY)


class NotPlaced(Exception):
    """Why a desktop was not restarted (translated)."""


def cluster_has_shared_storage(cluster_id: int) -> bool:
    return StoragePool.objects.filter(endpoint__cluster_id=cluster_id, kind=StoragePool.Kind.DISTRIBUTED).exists()


def ha_enabled(desktop: Desktop, *, shared: bool) -> bool:
    """The desktop's own flag; when unset, on for clusters with shared storage (where a restart can find its disk)."""
    return desktop.ha_enabled if desktop.ha_enabled is not None else shared


def desktops_on(host: Host) -> list[Desktop]:
    return list(
        Desktop.objects.filter(endpoint_id=host.endpoint_id)
        .exclude(state__in=(Desktop.State.DELETED, Desktop.State.REQUESTED))
        .select_related("tenant", "flavor", "image_version")
        .order_by("pk")
    )


def _flavor_of(desktop: Desktop) -> Flavor:
    """What placement fits: the desktop's sizes (an imported desktop has no flavor)."""
    flavor = desktop.flavor or Flavor(name=desktop.name)
    return Flavor(
        name=flavor.name,
        vcpus=desktop.vcpus,
        memory_mib=desktop.memory_mib,
        gpu_profile_id=flavor.gpu_profile_id,
    )


def _was_running(desktop: Desktop) -> bool:
    if desktop.state == Desktop.State.BUSY:
        return desktop.power_state == Desktop.Power.RUNNING
    return desktop.state in RUNNING_STATES


def _recreate(row: Desktop, *, start: bool) -> None:
    """On the row's (new) endpoint: bindings, the VM from the database, its data disks, power."""
    driver = driver_for(row.endpoint)
    networking.desktop_bindings_push(desktop=row, driver=driver)
    spec = networking.with_nics(vm_spec(row), networking.nic_specs(row))
    driver.create_vm(spec, start=False)
    for volume in Volume.objects.filter(desktop=row, state=Volume.State.ATTACHED).order_by("pk"):
        disk = driver.attach_volume(row.vm_name, volume.pool, volume.volume_name)
        Volume.objects.filter(pk=volume.pk).update(endpoint=row.endpoint, target=disk.target, path=disk.path)
    if start:
        driver.start(row.vm_name)
    info = driver.get_vm(row.vm_name)
    row.vm_uuid, row.vnc_host, row.vnc_port = info.uuid, info.vnc_host, info.vnc_port
    row.settle(power=Desktop.Power.of(info.power_state))


def desktop_restart(*, desktop_id: int, host: Host) -> dict:
    """Restart one desktop of the fenced ``host`` elsewhere; returns where, or raises NotPlaced with why."""
    with transaction.atomic():
        row = locks.desktop_lock(desktop_id)
        if row.endpoint_id != host.endpoint_id or row.state not in MOVABLE_STATES:
            return {}
        row = Desktop.objects.select_related("endpoint__site", "tenant", "image_version", "flavor__gpu_profile").get(
            pk=desktop_id
        )
        if row.image_version is None:
            raise NotPlaced(_("桌面没有镜像版本，无法在其他主机上重建"))
        start = _was_running(row)
        try:
            placement = place(flavor=_flavor_of(row), image_version=row.image_version)
        except ServiceError as exc:
            raise NotPlaced(exc.message) from exc
        row.endpoint, row.host = placement.endpoint, placement.host
        row.storage_pool = placement.storage_pool or row.storage_pool
        # Saved before the hypervisor work (which reads the row: the bindings go where it says); a failure
        # below rolls it back, and the desktop stays on the fenced host.
        row.save(update_fields=["endpoint", "host", "storage_pool", "updated_at"])
        try:
            _recreate(row, start=start)
        except DriverError as exc:
            reason = _("在主机 %(host)s 上启动失败：%(error)s") % {"host": placement.host, "error": exc.message}
            raise NotPlaced(reason) from exc
        row.save()
        moved = {"desktop": row.pk, "name": row.name, "from": host.name, "to": placement.host.name, "mac": row.mac}
        event_record(action=Action.HA_DESKTOP_RESTARTED, target=row, tenant=row.tenant, detail=moved)
    log.warning("HA: desktop %s restarted on %s (from %s)", row.vm_name, placement.host.name, host.name)
    return moved


def _unplaced(desktop: Desktop, host: Host, reason: str) -> dict:
    entry = {"desktop": desktop.pk, "name": desktop.name, "reason": reason}
    with transaction.atomic():
        event_record(
            action=Action.HA_DESKTOP_UNPLACED,
            target=desktop,
            tenant=desktop.tenant,
            result=AuditEvent.Result.FAILURE,
            reason=reason[:500],
            detail={"from": host.name, **entry},
        )
    return entry


def _restart_one(desktop: Desktop, host: Host, *, own_connection: bool) -> tuple[dict, dict]:
    """(where it went, {}) or ({}, why not). In a thread of its own it closes its database connection."""
    try:
        return desktop_restart(desktop_id=desktop.pk, host=host), {}
    except NotPlaced as exc:
        return {}, _unplaced(desktop, host, str(exc))
    except Exception as exc:  # noqa: BLE001 - one desktop's bug must not keep the others down
        log.exception("HA: restarting desktop %s failed", desktop.vm_name)
        return {}, _unplaced(desktop, host, _("内部错误：%(error)s") % {"error": exc})
    finally:
        if own_connection:
            connection.close()


def host_desktops_restart(host: Host) -> tuple[list[dict], list[dict]]:
    """Every desktop of the fenced host: restarted elsewhere, or listed with the reason it was not.

    Up to ``HA_RESTART_PARALLEL`` desktops restart at once (each under its own lock, on its own connection):
    a host's worth of desktops is back within the minute, not one after the other.
    """
    shared = cluster_has_shared_storage(host.endpoint.cluster_id)
    restarted, unplaced, movable = [], [], []
    for desktop in desktops_on(host):
        if not ha_enabled(desktop, shared=shared):
            unplaced.append(_unplaced(desktop, host, _("未启用高可用")))
        elif desktop.state not in MOVABLE_STATES:
            state = desktop.get_state_display()
            unplaced.append(_unplaced(desktop, host, _("桌面状态为“%(state)s”，未重启") % {"state": state}))
        else:
            movable.append(desktop)
    parallel = min(settings.HA_RESTART_PARALLEL, len(movable))
    if parallel > 1:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="ha-restart") as pool:
            results = list(pool.map(lambda d: _restart_one(d, host, own_connection=True), movable))
    else:
        results = [_restart_one(d, host, own_connection=False) for d in movable]
    for moved, refused in results:
        if moved:
            restarted.append(moved)
        if refused:
            unplaced.append(refused)
    return restarted, unplaced

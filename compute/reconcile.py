"""Reconciliation and vCenter takeover: compare each endpoint's real inventory with the database.

``reconcile()`` fixes power-state drift, marks desktops whose VM vanished, and lists
VMs the portal does not know (orphans) without touching them. ``vcenter_import()`` takes
an endpoint's VMs over into a tenant as desktops, idempotently, in bulk: one inventory
call (the driver's PropertyCollector listing), one query for what exists, then
``bulk_create``/``bulk_update``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import InvalidInput, NotFound
from compute import hooks, locks, quota
from compute.drivers.base import DriverError, VMInfo
from compute.errors import ComputeError
from compute.hypervisor import driver_error_note, driver_for
from compute.models import Desktop, Endpoint, ImageVersion
from compute.services import endpoint_refresh

if TYPE_CHECKING:
    from tenants.models import Tenant, User

log = logging.getLogger(__name__)

# States whose VM the portal expects to exist and whose power it owns.
_CHECKED = (Desktop.State.RUNNING, Desktop.State.STOPPED)


def _reconcile_endpoint(endpoint: Endpoint, summary: dict) -> None:
    driver = driver_for(endpoint)
    try:
        vms = driver.list_vms()
        info = driver.host_info()
    except DriverError as exc:
        driver_error_note(endpoint, exc)
        endpoint_refresh(endpoint=endpoint, info=None, error=exc.message)
        summary["errors"].append({"endpoint": endpoint.name, "error": exc.message})
        return
    endpoint_refresh(endpoint=endpoint, info=info)
    real = {vm.name: vm for vm in vms if not vm.template}
    known = set(
        Desktop.objects.filter(endpoint=endpoint).exclude(state=Desktop.State.DELETED).values_list("vm_name", flat=True)
    )
    golden = set(ImageVersion.objects.filter(endpoint=endpoint).exclude(template="").values_list("template", flat=True))
    with transaction.atomic():
        desktops = locks.endpoint_desktops_lock(endpoint, states=_CHECKED)
        changed = []
        for desktop in desktops:
            vm = real.get(desktop.vm_name)
            if vm is None:
                desktop.vanish()
                summary["missing"] += 1
                summary["missing_desktops"].append(desktop.pk)
                changed.append(desktop)
                event_record(
                    action=Action.DESKTOP_FAILED,
                    target=desktop,
                    tenant=desktop.tenant,
                    result="failure",
                    reason="vm_missing",
                )
                continue
            power = Desktop.Power.of(vm.power_state)
            if power != Desktop.Power.UNKNOWN and desktop.drift(power=power):
                desktop.vnc_port = vm.vnc_port
                summary["drift_fixed"] += 1
                changed.append(desktop)
        if changed:
            Desktop.objects.bulk_update(
                changed, ["state", "power_state", "vnc_port", "error_reason", "last_error", "stable_state"]
            )
            for desktop in changed:
                hooks.desktop_changed(desktop=desktop, reason="reconciled")
    for name in sorted(set(real) - known - golden):
        summary["orphans"] += 1
        summary["orphan_vms"].append({"endpoint": endpoint.name, "name": name})


def reconcile(*, endpoint: Endpoint | None = None) -> dict:
    """{"drift_fixed", "missing", "orphans"} counts, with the details and any endpoint errors."""
    summary = {"drift_fixed": 0, "missing": 0, "orphans": 0, "missing_desktops": [], "orphan_vms": [], "errors": []}
    endpoints = [endpoint] if endpoint else list(Endpoint.objects.filter(is_active=True).select_related("site"))
    for each in endpoints:
        try:
            _reconcile_endpoint(each, summary)
        except DriverError as exc:
            summary["errors"].append({"endpoint": each.name, "error": exc.message})
    if summary["drift_fixed"] or summary["missing"]:
        with transaction.atomic():
            event_record(
                action=Action.COMPUTE_RECONCILED,
                detail={k: summary[k] for k in ("drift_fixed", "missing", "orphans")},
            )
    return summary


# --- vCenter takeover ---------------------------------------------------------------------


def _hardware(vm: VMInfo) -> dict:
    return {
        "disks": [{"target": d.target, "size_bytes": d.size_bytes, "path": d.path} for d in vm.disks],
        "nics": [{"mac": n.mac, "network": n.network, "ip": n.ip} for n in vm.nics],
        "host": vm.host,
        "ref": vm.ref,
    }


def _imported_fields(vm: VMInfo) -> dict:
    power = Desktop.Power.of(vm.power_state)
    disk_gib = -(-sum(d.size_bytes for d in vm.disks) // 1024**3)
    return {
        "vcpus": vm.vcpus,
        "memory_mib": vm.memory_mib,
        "disk_gib": disk_gib,
        "power_state": power,
        "state": Desktop.State.RUNNING if power == Desktop.Power.RUNNING else Desktop.State.STOPPED,
        "vm_uuid": vm.uuid,
        "hardware": _hardware(vm),
        "mac": vm.nics[0].mac if vm.nics else "",
        "guest_ip": vm.guest_ip or (vm.nics[0].ip if vm.nics else ""),
    }


def _shares(desktops: list[Desktop]) -> list[dict[str, int]]:
    return [
        quota.desktop_amounts(
            vcpus=d.vcpus, memory_mib=d.memory_mib, disk_gib=d.disk_gib, gpus=d.gpus, nics=quota.nics_of(d)
        )
        for d in desktops
    ]


def _quota_charge(tenant: Tenant, desktops: list[Desktop]) -> tuple[int, list[dict]]:
    """Charge each desktop's share; one that does not fit is imported uncharged and reported.

    A takeover never refuses a VM that already runs: refusing would leave it unmanaged.
    """
    shares = _shares(desktops)
    changed, over, refused = [], [], []
    for desktop, share, reservation in zip(
        desktops, shares, quota.imported_quota_charge_many(tenant=tenant, shares=shares), strict=True
    ):
        if reservation is None:
            refused.append((desktop, share))
            continue
        desktop.quota_reservation = reservation
        changed.append(desktop)
    if refused:
        # Say why, as a dry run would: each refused share against what is charged now.
        messages = quota.imported_quota_preview(tenant=tenant, shares=[share for _, share in refused])
        over = [{"vm": d.vm_name, "message": m} for (d, _), m in zip(refused, messages, strict=True)]
    Desktop.objects.bulk_update(changed, ["quota_reservation"], batch_size=500)
    return len(changed), over


def _quota_preview(tenant: Tenant, desktops: list[Desktop]) -> list[dict]:
    """What _quota_charge would report as over quota, changing nothing."""
    messages = quota.imported_quota_preview(tenant=tenant, shares=_shares(desktops))
    return [{"vm": d.vm_name, "message": m} for d, m in zip(desktops, messages, strict=True) if m]


def _sort_out(vms: list[VMInfo], existing: dict[str, Desktop], *, new) -> tuple[list, list, int, list[dict]]:
    """(desktops to create, desktops to update, how many are unchanged, errors) for an endpoint's VMs;
    ``new()`` is a new desktop of the tenant taking them over."""
    errors: list[dict] = []
    to_create, to_update, unchanged = [], [], 0
    seen = set()
    for vm in vms:
        if not vm.name or vm.name in seen:
            errors.append({"vm": vm.name, "error": "duplicate or empty name"})
            continue
        seen.add(vm.name)
        fields = _imported_fields(vm)
        desktop = existing.get(vm.name)
        if desktop is None:
            desktop = new()
            desktop.name, desktop.vm_name = vm.name[:100], vm.name
            for key, value in fields.items():
                setattr(desktop, key, value)
            to_create.append(desktop)
            continue
        if desktop.state not in (Desktop.State.RUNNING, Desktop.State.STOPPED):
            unchanged += 1  # the portal is acting on it: leave it to that task
            continue
        if any(getattr(desktop, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(desktop, key, value)
            to_update.append(desktop)
        else:
            unchanged += 1
    return to_create, to_update, unchanged, errors


def vcenter_import(*, actor: User | None, endpoint_name: str, tenant_slug: str, dry_run: bool = False) -> dict:
    """Take an endpoint's VMs over into a tenant; {"created", "updated", "unchanged", "errors"}."""
    from tenants.models import Tenant

    endpoint = Endpoint.objects.select_related("site").filter(name=endpoint_name).first()
    if endpoint is None:
        raise NotFound(_("没有名为“%(name)s”的端点。") % {"name": endpoint_name}, code=ComputeError.ENDPOINT_NOT_FOUND)
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        raise NotFound(_("没有标识为“%(slug)s”的租户。") % {"slug": tenant_slug}, code=ComputeError.TENANT_NOT_FOUND)
    started = time.monotonic()
    try:
        vms = [vm for vm in driver_for(endpoint).list_vms() if not vm.template]
    except DriverError as exc:
        driver_error_note(endpoint, exc)
        raise InvalidInput(
            _("无法读取虚拟化平台的清单。"), code=ComputeError.ENDPOINT_UNREACHABLE, detail={"reason": exc.message}
        )
    listed = time.monotonic()
    existing = {d.vm_name: d for d in Desktop.objects.filter(endpoint=endpoint).exclude(state=Desktop.State.DELETED)}
    to_create, to_update, unchanged, errors = _sort_out(
        vms, existing, new=lambda: Desktop(tenant=tenant, endpoint=endpoint, imported=True, created_by=actor)
    )
    # Imported desktops take the tenant's quota like any other; earlier imports left uncharged
    # (over quota then) are charged now if they fit.
    uncharged = [
        d
        for d in existing.values()
        if d.imported and d.tenant_id == tenant.pk and not d.quota_reservation and d.state in Desktop.LIVE
    ]
    charged, over_quota = 0, []
    if dry_run:
        over_quota = _quota_preview(tenant, [*uncharged, *to_create])
    else:
        with transaction.atomic():
            Desktop.objects.bulk_create(to_create, batch_size=500)
            Desktop.objects.bulk_update(to_update, list(_imported_fields(vms[0]).keys()) if vms else [], batch_size=500)
            charged, over_quota = _quota_charge(tenant, [*uncharged, *to_create])
            hooks.desktops_changed(desktops=[*to_create, *to_update], reason="imported")
            event_record(
                action=Action.VCENTER_IMPORTED,
                actor=actor,
                target=endpoint,
                tenant=tenant,
                detail={
                    "created": len(to_create),
                    "updated": len(to_update),
                    "unchanged": unchanged,
                    "charged": charged,
                    "over_quota": [item["vm"] for item in over_quota],
                },
            )
    log.info("import_vcenter %s: list %.2fs, total %.2fs", endpoint.name, listed - started, time.monotonic() - started)
    return {
        "created": len(to_create),
        "updated": len(to_update),
        "unchanged": unchanged,
        "errors": errors,
        "charged": charged,
        "over_quota": over_quota,
        "dry_run": dry_run,
        "seconds": round(time.monotonic() - started, 3),
    }

"""What tasks report back about a desktop: the hypervisor's answer (provisioned, settled, resized,
destroyed) or its refusal (an error noted while it is retried, an operation failed for good)."""

from django.db import transaction

from audit.actions import Action
from audit.services import event_record, events_batched
from common.db import retry_on_deadlock
from compute import hooks, locks, quota
from compute.drivers.base import VMInfo
from compute.models import Desktop, Flavor, Snapshot, Volume


def apply_vm_info(desktop: Desktop, info: VMInfo) -> None:
    desktop.vm_uuid = info.uuid or desktop.vm_uuid
    desktop.vnc_host = info.vnc_host
    desktop.vnc_port = info.vnc_port
    if info.nics:
        desktop.mac = info.nics[0].mac
        desktop.guest_ip = info.nics[0].ip or desktop.guest_ip
    desktop.hardware = {
        "disks": [{"target": d.target, "size_bytes": d.size_bytes, "volume": d.volume} for d in info.disks],
        "nics": [{"mac": n.mac, "network": n.network, "ip": n.ip} for n in info.nics],
    }


@retry_on_deadlock
def desktop_provision_finish(*, desktop_id: int, info: VMInfo) -> Desktop:
    # The quota's event and the desktop's join the audit chain together, at the end (one head lock).
    with transaction.atomic(), events_batched():
        desktop = locks.desktop_lock(desktop_id)
        if desktop.state != Desktop.State.PROVISIONING:
            return desktop
        apply_vm_info(desktop, info)
        desktop.provisioned(running=info.power_state == "running")
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="provisioned")
        quota.desktop_quota_commit(reservation_id=desktop.quota_reservation)
        event_record(action=Action.DESKTOP_PROVISIONED, target=desktop, tenant=desktop.tenant)
    return desktop


@retry_on_deadlock
def desktop_note_error(*, desktop_id: int, error: str) -> None:
    """A transient failure: keep the state, remember the error and count the attempt."""
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop_id)
        desktop.last_error = error[:2000]
        desktop.attempts += 1
        desktop.save(update_fields=["last_error", "attempts", "updated_at"])


@retry_on_deadlock
def desktop_operation_fail(*, desktop_id: int, error: str) -> Desktop:
    """An operation failed for good. Provisioning ends in error with the quota released;
    deletion ends in error (the VM may be there); other operations return the desktop to
    where it was with the error noted."""
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop_id)
        state = desktop.state
        if state == Desktop.State.PROVISIONING:
            desktop.fail(reason=error[:2000])
            quota.desktop_quota_release(reservation_id=desktop.quota_reservation)
            desktop.quota_reservation = ""
        elif state == Desktop.State.DELETING:
            desktop.fail(reason=error[:2000])
        elif state in Desktop.TRANSIENT:
            desktop.abandon(reason=error[:2000])
        else:
            return desktop
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="failed")
        event_record(
            action=Action.DESKTOP_FAILED,
            target=desktop,
            tenant=desktop.tenant,
            result="failure",
            reason=error[:500],
            detail={"during": state},
        )
    return desktop


@retry_on_deadlock
def desktop_settle(*, desktop_id: int, info: VMInfo | None = None, power: str = "", reason: str = "settled") -> Desktop:
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop_id)
        if desktop.state not in Desktop.TRANSIENT or desktop.state in (
            Desktop.State.PROVISIONING,
            Desktop.State.DELETING,
        ):
            return desktop
        if info is not None:
            apply_vm_info(desktop, info)
            power = info.power_state
        desktop.settle(power=Desktop.Power.of(power))
        if desktop.power_state != Desktop.Power.RUNNING:
            desktop.vnc_port = None
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason=reason)
    return desktop


@retry_on_deadlock
def desktop_reset_finish(*, desktop_id: int, info: VMInfo) -> Desktop:
    """The system disk is a fresh copy of the golden image: the desktop settles, its snapshots are gone."""
    with transaction.atomic():
        desktop = desktop_settle(desktop_id=desktop_id, info=info)
        Snapshot.objects.gone_with_disk(desktop_id=desktop_id)
    return desktop


def desktop_clone_source_release(*, desktop_id: int) -> None:
    """The copy is made (or failed): the source, held while its disk was copied, is stopped again."""
    desktop_settle(desktop_id=desktop_id, power=Desktop.Power.STOPPED)


@retry_on_deadlock
def desktop_resize_finish(*, desktop_id: int, flavor_id: int, gpu_device: str, hold: str, info: VMInfo) -> Desktop:
    """The hypervisor applied the flavor: new sizes, the quota share swapped, metering told."""
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop_id)
        if desktop.state != Desktop.State.BUSY:
            return desktop
        desktop.resized(flavor=Flavor.objects.select_related("gpu_profile").get(pk=flavor_id), gpu_device=gpu_device)
        desktop.quota_reservation = quota.resize_quota_settle(desktop=desktop, hold=hold)
        apply_vm_info(desktop, info)
        desktop.settle(power=Desktop.Power.of(info.power_state))
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="resized")
    return desktop


def desktop_resize_fail(*, desktop_id: int, hold: str, error: str) -> Desktop:
    """The hypervisor refused: the growth held for the resize goes back, the desktop as it was."""
    with transaction.atomic():
        quota.resize_quota_release(hold=hold)
        return desktop_operation_fail(desktop_id=desktop_id, error=error)


@retry_on_deadlock
def desktop_destroy_finish(*, desktop_id: int, keep_volumes: bool = False) -> Desktop:
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop_id)
        if desktop.state != Desktop.State.DELETING:
            return desktop
        desktop.deleted()
        desktop.save()
        Snapshot.objects.gone_with_disk(desktop_id=desktop.pk)
        # Its data disks went with it (the task deleted them): their disk quota comes back. Kept ones
        # (``keep_volumes``: a libvirt volume of its own) stay detached, with their owner and quota.
        for volume in locks.desktop_volumes_lock(desktop.pk, exclude_state=Volume.State.DELETED):
            if keep_volumes and volume.volume_name and volume.state != Volume.State.DETACHED:
                volume.detached()
                volume.save(update_fields=["state", "desktop", "target"])
                hooks.volume_changed(volume=volume, reason="detached", desktop_id=desktop.pk)
                continue
            quota.desktop_quota_release(reservation_id=volume.quota_reservation)
            volume.gone_with_desktop()
            volume.save(update_fields=["state"])
            hooks.volume_changed(volume=volume, reason="deleted")
        quota.desktop_quota_release(reservation_id=desktop.quota_reservation)
        desktop.quota_reservation = ""
        desktop.save(update_fields=["quota_reservation"])
        hooks.desktop_changed(desktop=desktop, reason="deleted")
    return desktop

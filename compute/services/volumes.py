"""Writes of data disks: attach a new or a detached one, detach, delete, and what the task reports.

A disk holds disk quota from its creation until it is deleted. Every change of its state
tells ``compute.hooks.volume_changed`` (billing meters a detached disk on its own).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common import limits
from common.errors import Forbidden, InvalidInput, NotFound
from common.tasks import enqueue
from compute import hooks, locks, quota, selectors
from compute.errors import ComputeError
from compute.models import Desktop, Endpoint, Volume
from compute.services.callbacks import desktop_operation_fail, desktop_settle
from compute.services.rules import require_manage

if TYPE_CHECKING:
    from tenants.models import User

# Each operation: the task's op, the reason the volume's observers hear, the audit action.
_OPERATIONS = {
    "create": ("attach", "created", Action.VOLUME_ATTACHED),
    "attach": ("attach", "attaching", Action.VOLUME_ATTACHED),
    "detach": ("detach", "detaching", Action.VOLUME_DETACHED),
    "delete": ("delete", "deleting", Action.VOLUME_DELETED),
}


def _detail(operation: str, desktop: Desktop | None, volume: Volume) -> dict:
    if operation == "delete":
        return {"deleted": True, "size_gib": volume.size_gib}
    if operation == "detach":
        return {"desktop": desktop.pk}
    return {"desktop": desktop.pk, "size_gib": volume.size_gib, "new": operation == "create"}


def _volume_operation(
    operation: str,
    *,
    actor: User,
    desktop_id: int | None,
    volume_id: int | None,
    change: Callable[[Desktop | None, Volume | None], Volume],
) -> Volume:
    """What the volume services share, in one transaction: the desktop the disk is on (if any) and the
    volume locked, in that order; ``change`` checks them and moves them on (the volume's verb, the
    desktop held); then the volume's task is queued, both rows saved, the observers told and the audit
    event written."""
    op, reason, action = _OPERATIONS[operation]
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop_id) if desktop_id else None
        volume = change(desktop, locks.volume_lock(volume_id) if volume_id else None)
        endpoint = desktop.endpoint if desktop is not None else volume.endpoint
        volume.task_id = enqueue("compute.tasks.volumes.volume_run", volume.pk, op, queue=endpoint.site.celery_queue)
        if desktop is not None:
            desktop.task_id = volume.task_id
            desktop.save()
        volume.save()
        hooks.volume_changed(volume=volume, reason=reason)
        event_record(
            action=action,
            actor=actor,
            target=volume,
            tenant=desktop.tenant if desktop is not None else volume.tenant,
            detail=_detail(operation, desktop, volume),
        )
    return volume


def volume_attach(*, actor: User, desktop: Desktop, size_gib: int, name: str = "") -> Volume:
    """A new data disk for the desktop: its size is reserved from the disk quota until the disk is deleted."""
    require_manage(actor, desktop)
    if not 1 <= int(size_gib) <= limits.VOLUME_GIB_MAX:
        message = _("数据盘容量必须在 1 到 %(max)s GiB 之间。") % {"max": limits.VOLUME_GIB_MAX}
        raise InvalidInput(message, code=ComputeError.VOLUME_SIZE_INVALID, detail={"size_gib": [message]})

    def create(desktop: Desktop, _none) -> Volume:
        desktop.occupy(action=_("挂载数据盘"))
        reservation = quota.volume_quota_reserve(
            actor=actor, tenant=desktop.tenant, owner=desktop.owner, size_gib=int(size_gib)
        )
        libvirt = desktop.endpoint.kind == Endpoint.Kind.LIBVIRT
        return Volume.objects.create(
            desktop=desktop,
            tenant=desktop.tenant,
            owner=desktop.owner,
            endpoint=desktop.endpoint,
            name=(name or f"data-{desktop.volumes.count() + 1}")[:64],
            size_gib=size_gib,
            pool=desktop.storage_pool,
            # Named after nobody's VM: the disk may move to another desktop and outlive this one.
            volume_name=f"cc-vol-{desktop.tenant.slug[:12]}-{secrets.token_hex(5)}.qcow2" if libvirt else "",
            quota_reservation=reservation,
        )

    return _volume_operation("create", actor=actor, desktop_id=desktop.pk, volume_id=None, change=create)


def volume_attach_existing(*, actor: User, desktop: Desktop, volume: Volume) -> Volume:
    """Attach a detached data disk of the same tenant (and endpoint, where it lives) to the desktop."""
    require_manage(actor, desktop)
    if not selectors.volume_manageable_by(actor, volume) or volume.tenant_id != desktop.tenant_id:
        raise NotFound(_("数据盘不存在。"), code=ComputeError.VOLUME_NOT_FOUND)

    def attach(desktop: Desktop, volume: Volume) -> Volume:
        volume.begin_attach(desktop)
        desktop.occupy(action=_("挂载数据盘"))
        return volume

    return _volume_operation("attach", actor=actor, desktop_id=desktop.pk, volume_id=volume.pk, change=attach)


def volume_detach(*, actor: User, volume: Volume) -> Volume:
    """Take a data disk off its desktop. On libvirt the disk is kept (detached) to attach elsewhere or
    delete; on vCenter a disk is a file of its VM and goes with it."""
    require_manage(actor, volume.desktop)

    def detach(desktop: Desktop, volume: Volume) -> Volume:
        volume.begin_detach()
        desktop.occupy(action=_("卸载数据盘"))
        return volume

    return _volume_operation("detach", actor=actor, desktop_id=volume.desktop_id, volume_id=volume.pk, change=detach)


def volume_delete(*, actor: User, volume: Volume) -> Volume:
    """Delete a detached data disk for good; its disk quota is released when it is gone."""
    if not selectors.volume_manageable_by(actor, volume):
        raise Forbidden(_("您不能删除这块数据盘。"), code=ComputeError.VOLUME_READ_ONLY)

    def delete(_none, volume: Volume) -> Volume:
        volume.begin_deletion()
        return volume

    return _volume_operation("delete", actor=actor, desktop_id=None, volume_id=volume.pk, change=delete)


def volume_finish(
    *, volume_id: int, op: str, target: str = "", path: str = "", volume_name: str = "", error: str = ""
) -> Volume:
    with transaction.atomic():
        volume = locks.volume_lock(volume_id)
        desktop_id = volume.desktop_id
        if error:
            volume.fail(op=op, reason=error[:2000])
        elif op == "attach":
            volume.attached(target=target, path=path, volume_name=volume_name)
            quota.desktop_quota_commit(reservation_id=volume.quota_reservation)
        elif op == "detach" and volume.endpoint_id and volume.endpoint.kind == Endpoint.Kind.LIBVIRT:
            volume.detached()
        else:  # deleted, or detached from a vCenter VM (which destroys the disk file)
            volume.deleted()
            quota.desktop_quota_release(reservation_id=volume.quota_reservation)
        volume.save()
        hooks.volume_changed(
            volume=volume,
            reason=f"{op}_failed" if error else volume.state,
            desktop_id=desktop_id if volume.desktop_id is None else None,
        )
    if desktop_id is None:
        return volume
    if error:
        desktop_operation_fail(desktop_id=desktop_id, error=error)
    else:
        desktop_settle(
            desktop_id=desktop_id,
            power=_stable_power(desktop_id),
            reason="volume_attached" if op == "attach" else "volume_detached",
        )
    return volume


def _stable_power(desktop_id: int) -> str:
    stable = Desktop.objects.filter(pk=desktop_id).values_list("stable_state", flat=True).first()
    return Desktop.Power.RUNNING if stable == Desktop.State.RUNNING else Desktop.Power.STOPPED

"""Writes of data disks: attach a new or a detached one, detach, delete, and what the task reports.

A disk holds disk quota from its creation until it is deleted. Every change of its state
tells ``compute.hooks.volume_changed`` (billing meters a detached disk on its own).
"""

import secrets
from collections.abc import Callable

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput, NotFound
from common.tasks import enqueue
from compute import hooks, quota, selectors
from compute.errors import ComputeError
from compute.models import Desktop, Endpoint, Volume
from compute.services.callbacks import desktop_operation_fail, desktop_settle
from compute.services.rules import require_manage


def _volume_operation(
    *,
    actor,
    desktop_id: int | None,
    volume_id: int | None,
    op: str,
    change: Callable[[Desktop | None, Volume | None], Volume],
    reason: str,
    action: str,
    detail: dict,
) -> Volume:
    """What the volume services share, in one transaction: the desktop the disk is on (if any) and the
    volume locked, in that order; ``change`` checks them and moves them on (the volume's verb, the
    desktop held); then the task for ``op`` is queued, both rows saved, the observers told and the
    audit event written."""
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop_id) if desktop_id else None
        volume = (
            Volume.objects.select_related("endpoint__site").select_for_update().get(pk=volume_id) if volume_id else None
        )
        volume = change(desktop, volume)
        endpoint = desktop.endpoint if desktop is not None else volume.endpoint
        volume.task_id = enqueue("compute.tasks.volumes.volume_run", volume.pk, op, queue=endpoint.site.celery_queue)
        if desktop is not None:
            desktop.task_id = volume.task_id
            desktop.save()
        volume.save()
        hooks.volume_changed(volume=volume, reason=reason)
        tenant = desktop.tenant if desktop is not None else volume.tenant
        event_record(action=action, actor=actor, target=volume, tenant=tenant, detail=detail)
    return volume


def volume_attach(*, actor, desktop: Desktop, size_gib: int, name: str = "") -> Volume:
    """A new data disk for the desktop: its size is reserved from the disk quota until the disk is deleted."""
    require_manage(actor, desktop)
    if not 1 <= int(size_gib) <= 2048:
        raise InvalidInput(_("数据盘容量必须在 1 到 2048 GiB 之间。"), code=ComputeError.VOLUME_SIZE_INVALID)

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

    return _volume_operation(
        actor=actor,
        desktop_id=desktop.pk,
        volume_id=None,
        op="attach",
        change=create,
        reason="created",
        action=Action.VOLUME_ATTACHED,
        detail={"desktop": desktop.pk, "size_gib": size_gib, "new": True},
    )


def volume_attach_existing(*, actor, desktop: Desktop, volume: Volume) -> Volume:
    """Attach a detached data disk of the same tenant (and endpoint, where it lives) to the desktop."""
    require_manage(actor, desktop)
    if not selectors.volume_manageable_by(actor, volume) or volume.tenant_id != desktop.tenant_id:
        raise NotFound(_("数据盘不存在。"), code=ComputeError.VOLUME_NOT_FOUND)

    def attach(desktop: Desktop, volume: Volume) -> Volume:
        if volume.state != Volume.State.DETACHED or volume.desktop_id is not None:
            raise Conflict(_("数据盘正在使用中。"), code=ComputeError.VOLUME_IN_USE, detail={"state": volume.state})
        if volume.endpoint_id != desktop.endpoint_id:
            raise InvalidInput(
                _("数据盘在另一个虚拟化端点上，只能挂载到同一端点的桌面。"), code=ComputeError.VOLUME_OTHER_ENDPOINT
            )
        desktop.occupy(action=_("挂载数据盘"))
        volume.desktop = desktop
        volume.state = Volume.State.ATTACHING
        volume.last_error = ""
        return volume

    return _volume_operation(
        actor=actor,
        desktop_id=desktop.pk,
        volume_id=volume.pk,
        op="attach",
        change=attach,
        reason="attaching",
        action=Action.VOLUME_ATTACHED,
        detail={"desktop": desktop.pk, "size_gib": volume.size_gib, "new": False},
    )


def volume_detach(*, actor, volume: Volume) -> Volume:
    """Take a data disk off its desktop. On libvirt the disk is kept (detached) to attach elsewhere or
    delete; on vCenter a disk is a file of its VM and goes with it."""
    require_manage(actor, volume.desktop)

    def detach(desktop: Desktop, volume: Volume) -> Volume:
        if volume.state not in (Volume.State.ATTACHED, Volume.State.ERROR):
            raise Conflict(
                _("数据盘当前不能卸载。"), code=ComputeError.VOLUME_NOT_ATTACHED, detail={"state": volume.state}
            )
        desktop.occupy(action=_("卸载数据盘"))
        volume.state = Volume.State.DETACHING
        return volume

    return _volume_operation(
        actor=actor,
        desktop_id=volume.desktop_id,
        volume_id=volume.pk,
        op="detach",
        change=detach,
        reason="detaching",
        action=Action.VOLUME_DETACHED,
        detail={"desktop": volume.desktop_id},
    )


def volume_delete(*, actor, volume: Volume) -> Volume:
    """Delete a detached data disk for good; its disk quota is released when it is gone."""
    if not selectors.volume_manageable_by(actor, volume):
        raise Forbidden(_("您不能删除这块数据盘。"), code=ComputeError.VOLUME_READ_ONLY)

    def delete(_none, volume: Volume) -> Volume:
        if volume.state not in (Volume.State.DETACHED, Volume.State.ERROR) or volume.desktop_id is not None:
            raise Conflict(
                _("数据盘仍挂载在桌面上，请先卸载。"), code=ComputeError.VOLUME_IN_USE, detail={"state": volume.state}
            )
        volume.state = Volume.State.DELETING
        return volume

    return _volume_operation(
        actor=actor,
        desktop_id=None,
        volume_id=volume.pk,
        op="delete",
        change=delete,
        reason="deleting",
        action=Action.VOLUME_DELETED,
        detail={"deleted": True, "size_gib": volume.size_gib},
    )


def volume_finish(
    *, volume_id: int, op: str, target: str = "", path: str = "", volume_name: str = "", error: str = ""
) -> Volume:
    with transaction.atomic():
        volume = Volume.objects.select_related("endpoint").select_for_update().get(pk=volume_id)
        desktop_id = volume.desktop_id
        if error:
            volume.last_error = error[:2000]
            # A disk that could not be deleted is still there (and still detached).
            volume.state = Volume.State.DETACHED if op == "delete" else Volume.State.ERROR
        elif op == "attach":
            volume.state, volume.target, volume.path = Volume.State.ATTACHED, target, path
            volume.volume_name = volume_name or volume.volume_name
            volume.last_error = ""
            quota.desktop_quota_commit(reservation_id=volume.quota_reservation)
        elif op == "detach" and volume.endpoint_id and volume.endpoint.kind == Endpoint.Kind.LIBVIRT:
            volume.state, volume.desktop, volume.target = Volume.State.DETACHED, None, ""
        else:  # deleted, or detached from a vCenter VM (which destroys the disk file)
            volume.state, volume.desktop, volume.target = Volume.State.DELETED, None, ""
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

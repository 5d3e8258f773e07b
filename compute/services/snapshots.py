"""Writes of a desktop's snapshots: take one, revert to it, delete it, and what the task reports."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, InvalidInput
from common.tasks import enqueue
from compute import locks
from compute.drivers.base import VMInfo
from compute.errors import ComputeError
from compute.models import Desktop, Snapshot
from compute.services.callbacks import desktop_operation_fail, desktop_settle
from compute.services.rules import require_manage

if TYPE_CHECKING:
    from tenants.models import User

SNAPSHOT_NAME_RE = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9_.\-\u4e00-\u9fff]{0,63}$")


def _snapshot_task(snapshot: Snapshot, op: str, desktop: Desktop) -> str:
    return enqueue("compute.tasks.snapshots.snapshot_run", snapshot.pk, op, queue=desktop.endpoint.site.celery_queue)


def snapshot_create(*, actor: User, desktop: Desktop, name: str, description: str = "") -> Snapshot:
    require_manage(actor, desktop)
    if not SNAPSHOT_NAME_RE.match(name or ""):
        raise InvalidInput(
            _("快照名称只能包含中文、字母、数字、点、横线和下划线。"), code=ComputeError.SNAPSHOT_NAME_INVALID
        )
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop.pk)
        if desktop.snapshots.filter(name=name).exclude(state=Snapshot.State.DELETED).exists():
            raise Conflict(_("已有同名快照。"), code=ComputeError.SNAPSHOT_NAME_TAKEN)
        desktop.snapshots.filter(name=name, state=Snapshot.State.DELETED).delete()
        desktop.occupy(action=_("创建快照"))
        snapshot = Snapshot.objects.create(desktop=desktop, name=name, description=description, created_by=actor)
        desktop.task_id = snapshot.task_id = _snapshot_task(snapshot, "create", desktop)
        desktop.save()
        snapshot.save(update_fields=["task_id"])
        event_record(
            action=Action.SNAPSHOT_CREATED,
            actor=actor,
            target=snapshot,
            tenant=desktop.tenant,
            detail={"desktop": desktop.pk},
        )
    return snapshot


def _snapshot_operation(*, actor: User, snapshot: Snapshot, op: str, action: str, label: str) -> Snapshot:
    require_manage(actor, snapshot.desktop)
    with transaction.atomic():
        desktop = locks.desktop_lock(snapshot.desktop_id)
        snapshot = locks.snapshot_lock(snapshot.pk)
        snapshot.begin(op)
        desktop.occupy(action=label)
        desktop.task_id = snapshot.task_id = _snapshot_task(snapshot, op, desktop)
        desktop.save()
        snapshot.save()
        event_record(action=action, actor=actor, target=snapshot, tenant=desktop.tenant, detail={"desktop": desktop.pk})
    return snapshot


def snapshot_revert(*, actor: User, snapshot: Snapshot) -> Snapshot:
    return _snapshot_operation(
        actor=actor, snapshot=snapshot, op="revert", action=Action.SNAPSHOT_REVERTED, label=_("恢复快照")
    )


def snapshot_delete(*, actor: User, snapshot: Snapshot) -> Snapshot:
    return _snapshot_operation(
        actor=actor, snapshot=snapshot, op="delete", action=Action.SNAPSHOT_DELETED, label=_("删除快照")
    )


def snapshot_finish(*, snapshot_id: int, op: str, info: VMInfo | None, error: str = "") -> Snapshot:
    with transaction.atomic():
        snapshot = locks.snapshot_lock(snapshot_id)
        snapshot.finished(op=op, error=error[:2000])
        snapshot.save()
    if error:
        desktop_operation_fail(desktop_id=snapshot.desktop_id, error=error)
    else:
        desktop_settle(desktop_id=snapshot.desktop_id, info=info)
    return snapshot

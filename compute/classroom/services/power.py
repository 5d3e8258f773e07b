"""Power and reset of a pool's desktops: a teacher's bulk buttons and the schedule's power-on,
shutdown and after-class reset. The desktops are locked here and compute's power and reset tasks
started (or the classroom's rebuild, when the pool moved to a newer image version), so that the
schedule, which acts for no person, and a teacher share one path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, InvalidInput
from common.tasks import enqueue
from compute import services as compute_services
from compute.classroom import locks, task_names
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.classroom.services.access import require_manage
from compute.classroom.services.schedule import class_in_progress
from compute.models import Desktop, ImageVersion

if TYPE_CHECKING:
    from compute.drivers.base import VMInfo
    from tenants.models import User


def power_locked(desktop: Desktop, verb: str) -> bool:
    """Start/stop/reboot a locked desktop through compute's task; False when its state does not allow it."""
    wanted = {"start": Desktop.State.STOPPED, "stop": Desktop.State.RUNNING, "reboot": Desktop.State.RUNNING}[verb]
    if desktop.state != wanted:
        return False
    getattr(desktop, verb)()
    desktop.task_id = enqueue(task_names.DESKTOP_POWER, desktop.pk, verb, queue=desktop.endpoint.site.celery_queue)
    desktop.save()
    return True


def active_desktop_ids(pool: DesktopPool, *, exclude: Iterable[int] = ()) -> list[int]:
    return list(
        pool.seats.filter(state=Seat.State.ACTIVE, desktop__isnull=False)
        .exclude(desktop_id__in=list(exclude))
        .values_list("desktop_id", flat=True)
        .order_by("desktop_id")
    )


def power_many(desktop_ids: list[int], verb: str) -> int:
    changed = 0
    for desktop_id in desktop_ids:
        desktop = locks.desktop_lock(desktop_id, with_site=True)
        changed += power_locked(desktop, verb)
    return changed


def pool_power(*, actor: User | None, pool: DesktopPool, verb: str) -> int:
    """Start or stop every desktop of the pool now (a teacher's bulk action); returns how many changed."""
    if verb not in ("start", "stop", "reboot"):
        raise InvalidInput(_("未知操作。"), code=ErrorCode.POOL_ACTION_INVALID)
    require_manage(actor, pool)
    with transaction.atomic():
        changed = power_many(active_desktop_ids(pool), verb)
        event_record(
            action=Action.POOL_POWERED,
            actor=actor,
            target=pool,
            tenant=pool.tenant,
            detail={"verb": verb, "n": changed},
        )
    return changed


def seat_power(*, actor: User, seat: Seat, verb: str) -> Desktop:
    """A teacher's start/stop/reboot of one seat; compute's service checks the state and records it."""
    require_manage(actor, seat.pool)
    service = {
        "start": compute_services.desktop_start,
        "stop": compute_services.desktop_stop,
        "reboot": compute_services.desktop_reboot,
    }.get(verb)
    if service is None or seat.desktop is None:
        raise InvalidInput(_("未知操作。"), code=ErrorCode.POOL_ACTION_INVALID)
    return service(actor=actor, desktop=seat.desktop)


def reset_locked(desktop: Desktop, *, version: ImageVersion | None) -> None:
    """Reset a locked, live desktop: a fresh linked clone of its golden image, or — when the pool moved
    to another version — a desktop rebuilt from the new one. Either way the old disk is destroyed."""
    desktop.occupy(action=_("重置"))
    queue = desktop.endpoint.site.celery_queue
    if version is not None and version.pk != desktop.image_version_id:
        desktop.image_version = version
        desktop.task_id = enqueue(task_names.DESKTOP_REBUILD, desktop.pk, queue=queue)
    else:
        desktop.task_id = enqueue(task_names.DESKTOP_RESET, desktop.pk, queue=queue)
    desktop.save()


def _seat_reset(seat: Seat, *, move_version: bool) -> bool:
    if seat.desktop_id is None:
        return False
    desktop = locks.desktop_lock(seat.desktop_id, with_site=True)
    if desktop.state not in Desktop.LIVE:
        return False
    reset_locked(desktop, version=seat.pool.image_version if move_version else None)
    return True


def seat_reset(*, actor: User | None, seat: Seat) -> Seat:
    """Reset one seat to the golden image. During a class the seat keeps its image version;
    a newer version of the pool arrives at a reset outside class time."""
    require_manage(actor, seat.pool)
    with transaction.atomic():
        seat = Seat.objects.select_related("pool__course", "pool__image_version").get(pk=seat.pk)
        in_class = class_in_progress(seat.pool) is not None
        if not _seat_reset(seat, move_version=not in_class):
            raise Conflict(_("桌面当前不能重置，请等待正在进行的操作完成。"), code=ErrorCode.SEAT_BUSY)
        event_record(
            action=Action.SEAT_RESET,
            actor=actor,
            target=seat.desktop,
            tenant=seat.pool.tenant,
            detail={"pool": seat.pool_id, "student": seat.student.username},
        )
    return seat


def pool_reset(*, actor: User | None, pool: DesktopPool) -> int:
    """Reset every seat to the golden image (the pool's current version). Refused during a class."""
    require_manage(actor, pool)
    if class_in_progress(pool) is not None:
        raise Conflict(_("正在上课，不能重置整个桌面池；请在课后重置。"), code=ErrorCode.POOL_IN_CLASS)
    with transaction.atomic():
        pool = locks.pool_lock(pool.pk)
        count = sum(
            _seat_reset(seat, move_version=True)
            for seat in pool.seats.filter(state=Seat.State.ACTIVE).select_related("pool__image_version")
        )
        event_record(action=Action.POOL_RESET, actor=actor, target=pool, tenant=pool.tenant, detail={"n": count})
    return count


def desktop_rebuild_finish(*, desktop_id: int, info: VMInfo) -> Desktop:
    """The rebuild task made the VM again from the new version: the desktop settles as it now is."""
    return compute_services.desktop_settle(desktop_id=desktop_id, info=info)

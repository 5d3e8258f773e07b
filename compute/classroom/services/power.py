"""Power and reset of a pool's desktops: a teacher's bulk buttons and the schedule's power-on,
shutdown and after-class reset. The desktops themselves are changed by compute's services
(``desktops_power``, ``desktops_reset``), so that the schedule, which acts for no person, and a
teacher share one path; the classroom checks who may act on the pool and records the pool's event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, InvalidInput
from compute import services as compute_services
from compute.classroom import locks
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.classroom.services.access import require_manage
from compute.classroom.services.schedule import class_in_progress
from compute.models import Desktop

if TYPE_CHECKING:
    from tenants.models import User


def active_desktop_ids(pool: DesktopPool, *, exclude: Iterable[int] = ()) -> list[int]:
    return list(
        pool.seats.filter(state=Seat.State.ACTIVE, desktop__isnull=False)
        .exclude(desktop_id__in=list(exclude))
        .values_list("desktop_id", flat=True)
        .order_by("desktop_id")
    )


def pool_power(*, actor: User | None, pool: DesktopPool, verb: str) -> int:
    """Start or stop every desktop of the pool now (a teacher's bulk action); returns how many changed.

    Whoever may manage the pool may power its seats: compute is asked as the platform (``actor=None``)."""
    if verb not in Desktop.POWER_VERBS:
        raise InvalidInput(_("未知操作。"), code=ErrorCode.POOL_ACTION_INVALID)
    require_manage(actor, pool)
    with transaction.atomic():
        changed = len(compute_services.desktops_power(actor=None, desktops=active_desktop_ids(pool), verb=verb))
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
    service = compute_services.POWER_SERVICES.get(verb)
    if service is None or seat.desktop is None:
        raise InvalidInput(_("未知操作。"), code=ErrorCode.POOL_ACTION_INVALID)
    return service(actor=actor, desktop=seat.desktop)


def seat_reset(*, actor: User | None, seat: Seat) -> Seat:
    """Reset one seat to the golden image. During a class the seat keeps its image version;
    a newer version of the pool arrives at a reset outside class time."""
    require_manage(actor, seat.pool)
    with transaction.atomic():
        seat = Seat.objects.select_related("pool__course", "pool__image_version").get(pk=seat.pk)
        in_class = class_in_progress(seat.pool) is not None
        version = None if in_class else seat.pool.image_version
        reset = seat.desktop_id is not None and compute_services.desktops_reset(
            actor=None, desktops=[seat.desktop_id], image_version=version
        )
        if not reset:
            raise Conflict(_("桌面当前不能重置，请等待正在进行的操作完成。"), code=ErrorCode.SEAT_BUSY)
        event_record(
            action=Action.SEAT_RESET,
            actor=actor,
            target=seat.desktop,
            tenant=seat.pool.tenant,
            detail={"pool": seat.pool_id, "student": seat.student.username if seat.student else None},
        )
    return seat


def pool_reset(*, actor: User | None, pool: DesktopPool) -> int:
    """Reset every seat to the golden image (the pool's current version). Refused during a class."""
    require_manage(actor, pool)
    if class_in_progress(pool) is not None:
        raise Conflict(_("正在上课，不能重置整个桌面池；请在课后重置。"), code=ErrorCode.POOL_IN_CLASS)
    with transaction.atomic():
        pool = locks.pool_lock(pool.pk)
        reset = compute_services.desktops_reset(
            actor=None, desktops=active_desktop_ids(pool), image_version=pool.image_version
        )
        event_record(action=Action.POOL_RESET, actor=actor, target=pool, tenant=pool.tenant, detail={"n": len(reset)})
    return len(reset)

"""A pool's seats: the desktops of its seats requested (ten to a transaction, so that provisioning
starts with the first), retried when it failed, handed from one holder to another
(reset first: nothing of the previous holder's is left), retired; and a teacher's own hand: a spare
seat given to a student, a student's seat taken back as a spare.

Desktops are made and deleted by compute's own services. ``actor=None`` means the platform itself;
desktops need a person to be created for, so the pool's course teacher stands in there."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.db import retry_on_deadlock
from common.errors import Conflict, InvalidInput, InvalidTransition, ServiceError
from compute import locks as compute_locks
from compute import services as compute_services
from compute.classroom import locks
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.classroom.services.access import require_manage, stand_in
from compute.classroom.services.schedule import desktops_on_now
from compute.models import Desktop, Flavor
from compute.quota import flavor_share
from tenants.models import Course, RosterEntry
from tenants.quotas import ResourceAmounts

if TYPE_CHECKING:
    from tenants.models import User

log = logging.getLogger(__name__)


def seat_amounts(flavor: Flavor, seats: int = 1) -> ResourceAmounts:
    """What ``seats`` desktops of this flavor take from the quotas: compute's own count (one source)."""
    return flavor_share(flavor, count=seats)


def roster_students(course: Course) -> list[User]:
    return [e.user for e in RosterEntry.objects.filter(course=course).select_related("user").order_by("student_number")]


def seats_wanted(pool: DesktopPool, roster_size: int) -> int:
    """The pool's size: one seat per student on the roster, at least ``seat_target`` (the rest spare)."""
    return max(pool.seat_target, roster_size)


def seat_desktop_create(
    *, pool: DesktopPool, student: User | None, creator: User, start: bool | None = None
) -> Desktop:
    """The seat's desktop follows the schedule from the start: made running only when the pool's
    desktops are meant to be on now (in class, or within the lead before it), stopped otherwise.
    A spare seat's desktop is the teacher's (``creator``) until the seat is given to a student."""
    return compute_services.desktop_create(
        actor=creator,
        tenant=pool.tenant,
        image_version=pool.image_version,
        flavor=pool.flavor,
        owner=student or creator,
        course=pool.course,
        name=f"{pool.course.code}-{student.username if student else 'spare'}",
        endpoint=pool.endpoint,
        start=desktops_on_now(pool) if start is None else start,
    )


# What a seat's desktop is made of: read once for all the seats of a batch (``_seat_provision``).
_POOL_RELATED = ("tenant", "course", "image_version", "flavor", "endpoint")


def _pool_with_related(pool_id: int) -> DesktopPool:
    return DesktopPool.objects.select_related(*_POOL_RELATED, "image_version__image").get(pk=pool_id)


def _reuse_related(pool: DesktopPool, loaded: DesktopPool) -> None:
    """The freshly locked ``pool`` takes the related rows ``loaded`` holds, where it still points at them
    (a change of the pool's image or flavor meanwhile is read anew)."""
    for name in _POOL_RELATED:
        field = DesktopPool._meta.get_field(name)
        if getattr(pool, field.attname) == getattr(loaded, field.attname) and field.is_cached(loaded):
            field.set_cached_value(pool, field.get_cached_value(loaded))


@retry_on_deadlock
def _seat_provision(
    *, pool_id: int, seat_id: int, creator: User, start: bool | None, loaded: DesktopPool | None = None
) -> bool | None:
    """One seat's desktop requested in its own transaction (run again when MariaDB picks it as a
    deadlock victim beside a worker committing another desktop's quota). None: nothing to do; else
    whether its desktop is made running. ``loaded``: the pool with its related rows, read once for a batch."""
    with transaction.atomic():
        # The pool's lock orders this with a roster sync or a retry of the same seat.
        pool = locks.pool_lock(pool_id)
        if loaded is not None:
            _reuse_related(pool, loaded)
        seat = Seat.objects.select_related("student").get(pk=seat_id)
        if seat.desktop_id is not None or seat.state != Seat.State.ACTIVE:
            return None
        start = desktops_on_now(pool) if start is None else start
        seat.desktop = seat_desktop_create(pool=pool, student=seat.student, creator=creator, start=start)
        seat.error = ""
        seat.save(update_fields=["desktop", "error"])
    return start


# Seats whose desktops are requested in one transaction: the worker starts on the first batch while
# the next is written, and a batch shares its checks, quota rows and audit append (session 9).
SEAT_BATCH = 10


@retry_on_deadlock
def _seats_batch_provision(
    *, pool_id: int, seat_ids: list[int], creator: User, start: bool | None, loaded: DesktopPool
) -> tuple[int, bool | None]:
    """The desktops of a batch of seats requested in one transaction (compute's ``desktops_create``):
    all of them or, on a refusal, none (raised). Returns how many were requested and whether they are
    made running."""
    with transaction.atomic():
        pool = locks.pool_lock(pool_id)
        _reuse_related(pool, loaded)
        seats = list(
            Seat.objects.select_related("student")
            .filter(pk__in=seat_ids, state=Seat.State.ACTIVE, desktop__isnull=True)
            .order_by("pk")
        )
        if not seats:
            return 0, start
        start = desktops_on_now(pool) if start is None else start
        desktops = compute_services.desktops_create(
            actor=creator,
            tenant=pool.tenant,
            image_version=pool.image_version,
            flavor=pool.flavor,
            course=pool.course,
            wanted=[
                (seat.student or creator, f"{pool.course.code}-{seat.student.username if seat.student else 'spare'}")
                for seat in seats
            ],
            endpoint=pool.endpoint,
            start=start,
        )
        for seat, desktop in zip(seats, desktops, strict=True):
            seat.desktop, seat.error = desktop, ""
        Seat.objects.bulk_update(seats, ["desktop", "error"])
    return len(seats), start


def _seats_one_by_one(*, pool_id: int, seat_ids: list[int], creator: User, start: bool | None, loaded) -> int:
    """Seat by seat, each in its own transaction: after a batch was refused, so that the seats before the
    refusal get their desktop and the others the reason."""
    requested = 0
    for seat_id in seat_ids:
        try:
            made = _seat_provision(pool_id=pool_id, seat_id=seat_id, creator=creator, start=start, loaded=loaded)
        except ServiceError as exc:
            left = Seat.objects.filter(pk__in=seat_ids, state=Seat.State.ACTIVE, desktop__isnull=True)
            left.update(error=exc.message[:500])
            log.warning("pool %s: %s seats without a desktop: %s", pool_id, left.count(), exc.message)
            break
        if made is not None:
            start, requested = made, requested + 1
    return requested


def seats_provision(*, pool_id: int, creator: User) -> int:
    """Request the desktops of a new pool's seats, ``SEAT_BATCH`` seats per transaction, so that the
    worker starts on the first while the others are still being written. A refusal (no capacity left,
    a budget, the quota) ends it: its batch is taken again seat by seat, and the seats left without a
    desktop keep the reason and are retried from the pool page. Returns how many were requested."""
    requested, start = 0, None
    seat_ids = list(
        Seat.objects.filter(pool_id=pool_id, state=Seat.State.ACTIVE, desktop__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    loaded = _pool_with_related(pool_id) if seat_ids else None
    for first in range(0, len(seat_ids), SEAT_BATCH):
        batch = seat_ids[first : first + SEAT_BATCH]
        try:
            made, start = _seats_batch_provision(
                pool_id=pool_id, seat_ids=batch, creator=creator, start=start, loaded=loaded
            )
        except ServiceError:
            rest = seat_ids[first:]
            return requested + _seats_one_by_one(
                pool_id=pool_id, seat_ids=rest, creator=creator, start=start, loaded=loaded
            )
        requested += made
    return requested


def pool_seats_provision(*, actor: User | None, pool: DesktopPool) -> int:
    """Request the desktops of the pool's seats that have none yet (a creation cut short, e.g. by a
    deadlock while seeding beside a live worker); returns how many were requested."""
    require_manage(actor, pool)
    return seats_provision(pool_id=pool.pk, creator=stand_in(actor, pool.course))


def seat_retire(seat: Seat, *, creator: User) -> bool:
    """Wipe and delete the seat's desktop (compute deletes the VM with its disks). False: try later."""
    desktop = seat.desktop
    if desktop is not None and desktop.state != Desktop.State.DELETED:
        desktop = compute_locks.desktop_lock(desktop.pk)
        if desktop.state == Desktop.State.DELETING:
            pass
        elif desktop.state in Desktop.TRANSIENT:
            seat.state = Seat.State.RETIRING
            seat.save(update_fields=["state"])
            return False
        else:
            keep = seat.pool.leaver_disks == DesktopPool.LeaverDisks.KEEP
            compute_services.desktop_delete(actor=creator, desktop=desktop, keep_data_disks=keep)
    seat.state = Seat.State.RETIRED
    seat.retired_at = timezone.now()
    seat.save(update_fields=["state", "retired_at"])
    return True


def seat_hand_over(
    seat: Seat,
    student: User | None,
    *,
    actor: User | None = None,
    action: Action = Action.SEAT_HANDED_OVER,
) -> bool:
    """Give the seat's desktop to another holder, reset to the golden image first (等保: no residue),
    the leaver's data disks kept for them or wiped per the pool's ``leaver_disks``; compute's
    ``desktop_hand_over`` does it. ``student`` None makes it a spare seat again: the desktop goes back
    to the course's teacher. False when the desktop is not live (busy, in error)."""
    if seat.desktop_id is None:
        return False
    previous = seat.student
    if previous is None and seat.desktop.state in Desktop.TRANSIENT:
        return False
    pool = seat.pool
    try:
        desktop = compute_services.desktop_hand_over(
            actor=None,
            desktop=seat.desktop,
            owner=student or pool.course.teacher,
            name=f"{pool.course.code}-{student.username if student else 'spare'}",
            image_version=pool.image_version,
            keep_data_disks=pool.leaver_disks == DesktopPool.LeaverDisks.KEEP,
        )
    except InvalidTransition:
        return False
    seat.student = student
    seat.save(update_fields=["student"])
    event_record(
        action=action,
        actor=actor,
        target=desktop,
        tenant=pool.tenant,
        detail={
            "pool": seat.pool_id,
            "seat": seat.pk,
            "from": previous.username if previous else None,
            "to": student.username if student else None,
            "data_disks": pool.leaver_disks if previous else None,
        },
    )
    return True


def _seat_for_change(pool_id: int, seat_id: int) -> tuple[DesktopPool, Seat]:
    """The pool locked (it orders every change of its seats) and the seat as it is now, active."""
    pool = locks.pool_lock(pool_id)
    seat = Seat.objects.select_related("student", "desktop", "pool__course__teacher", "pool__image_version").get(
        pk=seat_id
    )
    if pool.state != DesktopPool.State.ACTIVE:
        raise Conflict(_("桌面池已停用。"), code=ErrorCode.POOL_RETIRED)
    if seat.state != Seat.State.ACTIVE:
        raise Conflict(_("该座位已回收。"), code=ErrorCode.SEAT_RETIRED)
    return pool, seat


def seats_free_students(pool: DesktopPool) -> list[User]:
    """Students on the pool's roster who hold no seat of it: whom a spare seat can be given to (one query)."""
    seated = pool.seats.filter(state=Seat.State.ACTIVE, student__isnull=False).values("student_id")
    return [
        e.user
        for e in RosterEntry.objects.filter(course_id=pool.course_id)
        .exclude(user_id__in=seated)
        .select_related("user")
        .order_by("student_number")
    ]


def roster_student(pool: DesktopPool, **lookup) -> User:
    """The student on the pool's roster that ``lookup`` (``pk=`` or ``username=``) names; InvalidInput
    (400) for anyone else, so that a spare seat goes to the course's students only."""
    entry = RosterEntry.objects.filter(course_id=pool.course_id, **{f"user__{k}": v for k, v in lookup.items()})
    entry = entry.select_related("user").first()
    if entry is None:
        raise InvalidInput(_("该学生不在课程名单上。"), code=ErrorCode.STUDENT_NOT_ON_ROSTER)
    return entry.user


def seat_assign(*, actor: User | None, seat: Seat, student: User) -> Seat:
    """A teacher gives a spare seat to a student on the roster who has none: the seat's desktop is
    reset to the golden image and handed to them (a seat still without a desktop just takes the
    student; its desktop is requested by the retry). Refused: the seat is someone's (409), the
    student is not on the roster (400) or already has a seat (409), the desktop is busy (409)."""
    require_manage(actor, seat.pool)
    with transaction.atomic():
        pool, seat = _seat_for_change(seat.pool_id, seat.pk)
        if seat.student_id is not None:
            raise Conflict(_("该座位已分配给 %(name)s。") % {"name": seat.holder_name}, code=ErrorCode.SEAT_NOT_SPARE)
        if not RosterEntry.objects.filter(course_id=pool.course_id, user=student).exists():
            raise InvalidInput(
                _("%(name)s 不在课程名单上。") % {"name": student.get_full_name() or student.username},
                code=ErrorCode.STUDENT_NOT_ON_ROSTER,
            )
        if pool.seats.filter(state=Seat.State.ACTIVE, student=student).exists():
            raise Conflict(
                _("%(name)s 已有座位。") % {"name": student.get_full_name() or student.username},
                code=ErrorCode.STUDENT_SEATED,
                detail={"student": student.username},
            )
        if seat.desktop_id is None:
            seat.student = student
            seat.save(update_fields=["student"])
            event_record(
                action=Action.SEAT_ASSIGNED,
                actor=actor,
                target=pool,
                tenant=pool.tenant,
                detail={"pool": pool.pk, "seat": seat.pk, "from": None, "to": student.username},
            )
        elif not seat_hand_over(seat, student, actor=actor, action=Action.SEAT_ASSIGNED):
            raise Conflict(_("桌面当前不能移交，请等待正在进行的操作完成。"), code=ErrorCode.SEAT_BUSY)
    return seat


def seat_take_back(*, actor: User | None, seat: Seat) -> Seat:
    """A teacher takes a student's seat back: it becomes a spare seat. Its desktop goes back to the
    course's teacher with its system disk reset to the golden image, the student's data disks kept
    (detached) for them or wiped per the pool's ``leaver_disks``, so that nothing of theirs reaches
    the next student. The student stays on the roster (a roster sync seats them again)."""
    require_manage(actor, seat.pool)
    with transaction.atomic():
        pool, seat = _seat_for_change(seat.pool_id, seat.pk)
        if seat.student_id is None:
            raise Conflict(_("该座位已是空闲座位。"), code=ErrorCode.SEAT_SPARE)
        if seat.desktop_id is None:
            previous = seat.student
            seat.student = None
            seat.save(update_fields=["student"])
            event_record(
                action=Action.SEAT_TAKEN_BACK,
                actor=actor,
                target=pool,
                tenant=pool.tenant,
                detail={"pool": pool.pk, "seat": seat.pk, "from": previous.username, "to": None},
            )
        elif not seat_hand_over(seat, None, actor=actor, action=Action.SEAT_TAKEN_BACK):
            raise Conflict(_("桌面当前不能收回，请等待正在进行的操作完成。"), code=ErrorCode.SEAT_BUSY)
    return seat


def seat_retry(*, actor: User | None, seat: Seat) -> Desktop:
    """Provision a failed seat's desktop again (compute's retry, for the teacher's retry button);
    a seat whose desktop could not even be requested gets it requested now."""
    require_manage(actor, seat.pool)
    creator = stand_in(actor, seat.pool.course)
    if seat.desktop_id is not None:
        return compute_services.desktop_retry(actor=creator, desktop=seat.desktop, start=desktops_on_now(seat.pool))
    with transaction.atomic():
        pool = locks.pool_lock(seat.pool_id)
        seat = Seat.objects.select_related("student").get(pk=seat.pk)
        if seat.desktop_id is None and seat.state == Seat.State.ACTIVE:
            seat.desktop = seat_desktop_create(pool=pool, student=seat.student, creator=creator)
            seat.error = ""
            seat.save(update_fields=["desktop", "error"])
    if seat.desktop is None:
        raise Conflict(_("该座位已回收。"), code=ErrorCode.SEAT_RETIRED)
    return seat.desktop


def _failed_seats(pool: DesktopPool) -> QuerySet[Seat]:
    return pool.seats.filter(state=Seat.State.ACTIVE).filter(
        Q(desktop__state=Desktop.State.ERROR) | Q(desktop__isnull=True) & ~Q(error="")
    )


def pool_retry_failed(*, actor: User | None, pool: DesktopPool) -> int:
    require_manage(actor, pool)
    count = 0
    for seat in _failed_seats(pool).select_related("desktop", "pool__course").order_by("pk"):
        seat_retry(actor=actor, seat=seat)
        count += 1
    return count

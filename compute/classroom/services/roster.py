"""The pool follows its course's roster: joining students take a leaver's desktop (reset), a spare seat
or a new desktop; leavers' seats become spare seats while the pool keeps spares, else they are
retired; and the preview of all that, shown before a roster import is applied."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, ServiceError
from compute.classroom import locks
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.classroom.services.access import require_manage, stand_in
from compute.classroom.services.pools import active_pool
from compute.classroom.services.schedule import desktops_on_now
from compute.classroom.services.seats import (
    roster_students,
    seat_amounts,
    seat_desktop_create,
    seat_hand_over,
    seat_retire,
    seats_wanted,
)
from tenants.models import Course
from tenants.quotas import QuotaExceeded, quota_check

if TYPE_CHECKING:
    from tenants.models import User

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    added: int = 0
    handed_over: int = 0
    retired: int = 0
    pending: int = 0
    # Seats added without a desktop (no quota or capacity left): they keep the reason, retried from the pool.
    waiting: int = 0
    # Spare seats given to joining students (their desktops reset for them), and spare seats added.
    assigned: int = 0
    spares_added: int = 0
    # Seats of students who left kept as spare seats (reset; the leaver's data disks per the pool's setting).
    freed: int = 0

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "handed_over": self.handed_over,
            "retired": self.retired,
            "pending": self.pending,
            "waiting": self.waiting,
            "assigned": self.assigned,
            "spares_added": self.spares_added,
            "freed": self.freed,
        }

    def __bool__(self) -> bool:
        return any(self.as_dict().values())


@dataclass
class _Plan:
    joining: list  # students on the roster without a seat
    leaving: list  # seats whose student left, or that wait to be retired
    spares: list  # active seats without a student
    spares_wanted: int  # how many spare seats the pool keeps once the roster is seated


def _sync_plan(pool: DesktopPool) -> _Plan:
    roster = roster_students(pool.course)
    roster_ids = {s.pk for s in roster}
    seats = list(pool.seats.exclude(state=Seat.State.RETIRED).select_related("student", "desktop", "pool__course"))
    active = [s for s in seats if s.state == Seat.State.ACTIVE]
    seated = {s.student_id for s in active if s.student_id is not None}
    return _Plan(
        joining=[s for s in roster if s.pk not in seated],
        leaving=[
            s
            for s in seats
            if s.state == Seat.State.RETIRING or (s.student_id is not None and s.student_id not in roster_ids)
        ],
        spares=[s for s in active if s.student_id is None],
        spares_wanted=seats_wanted(pool, len(roster)) - len(roster),
    )


def _give_spares(plan: _Plan, result: SyncResult) -> None:
    """Joining students take spare seats first: a spare's desktop is reset and handed to the student
    (one without a desktop yet just takes the student; its desktop is requested at the retry)."""
    for seat in list(plan.spares):
        if not plan.joining:
            break
        student = plan.joining[0]
        if seat.desktop_id is None:
            seat.student = student
            seat.save(update_fields=["student"])
        elif not seat_hand_over(seat, student):
            continue
        plan.joining.pop(0)
        plan.spares.remove(seat)
        result.assigned += 1


def _leavers_to_spares(plan: _Plan, result: SyncResult) -> None:
    """While the pool keeps fewer spare seats than it wants, a leaver's seat stays as a spare instead of
    being deleted now and a new one made: its desktop goes back to the teacher reset to the golden
    image, the leaver's data disks kept for them or wiped per the pool's setting. A busy desktop is
    retired as before."""
    for seat in list(plan.leaving):
        if len(plan.spares) >= plan.spares_wanted:
            break
        if seat.state != Seat.State.ACTIVE:
            continue
        if seat.desktop_id is None:
            seat.student = None
            seat.save(update_fields=["student"])
        elif not seat_hand_over(seat, None):
            continue
        plan.leaving.remove(seat)
        plan.spares.append(seat)
        result.freed += 1


def _spares_follow(pool: DesktopPool, plan: _Plan, *, creator: User, result: SyncResult) -> None:
    """Keep the pool's spare seats: new ones provisioned when too few, the last ones retired when too many."""
    missing = plan.spares_wanted - len(plan.spares)
    if missing > 0:
        added = SyncResult()
        _seats_add(pool, [None] * missing, creator=creator, result=added)
        result.spares_added += added.added
        result.waiting += added.waiting
    for seat in plan.spares[plan.spares_wanted :] if missing < 0 else []:
        if seat_retire(seat, creator=creator):
            result.retired += 1
        else:
            result.pending += 1


def _hand_over_seats(leaving: list[Seat], joining: list[User], result: SyncResult) -> None:
    """A leaving student's live desktop goes, reset, to a joining one: both lists shrink by what was handed."""
    for seat in list(leaving):
        if not joining or seat.state == Seat.State.RETIRING:
            break
        if seat_hand_over(seat, joining[0]):
            joining.pop(0)
            leaving.remove(seat)
            result.handed_over += 1


def _seats_add(pool: DesktopPool, joining: list[User | None], *, creator: User, result: SyncResult) -> None:
    """A seat for each joining student (None: a spare seat), its desktop requested; once one is refused
    (quota, capacity) the rest are not tried: their seats wait with the reason, for the pool page's retry."""
    refusal, start = "", desktops_on_now(pool) if joining else False
    for student in joining:
        seat = Seat.objects.create(pool=pool, student=student)
        result.added += 1
        if not refusal:
            try:
                seat.desktop = seat_desktop_create(pool=pool, student=student, creator=creator, start=start)
                seat.save(update_fields=["desktop"])
                continue
            except ServiceError as exc:
                refusal = exc.message[:500]
        seat.error = refusal
        seat.save(update_fields=["error"])
        result.waiting += 1


def pool_sync_roster(*, actor: User | None, pool: DesktopPool) -> SyncResult:
    """Follow the roster: new students get a seat (a leaving student's desktop, reset, when there is
    one, then a spare seat; else a new desktop within quota, or a seat that waits with the reason);
    seats of students who left stay as spare seats while the pool keeps fewer than it wants (reset),
    the others are wiped and deleted. Called by the roster's own changes (``roster_changed``) too."""
    require_manage(actor, pool)
    result = SyncResult()
    with transaction.atomic():
        pool = locks.pool_lock(pool.pk)
        if pool.state != DesktopPool.State.ACTIVE:
            raise Conflict(_("桌面池已停用。"), code=ErrorCode.POOL_RETIRED)
        creator = stand_in(actor, pool.course)
        plan = _sync_plan(pool)
        _hand_over_seats(plan.leaving, plan.joining, result)
        _give_spares(plan, result)
        _seats_add(pool, plan.joining, creator=creator, result=result)
        _leavers_to_spares(plan, result)
        _spares_follow(pool, plan, creator=creator, result=result)
        for seat in plan.leaving:
            if seat_retire(seat, creator=creator):
                result.retired += 1
            else:
                result.pending += 1
        if result:
            event_record(
                action=Action.POOL_ROSTER_SYNCED, actor=actor, target=pool, tenant=pool.tenant, detail=result.as_dict()
            )
    return result


def roster_changed(*, course: Course, actor: User | None) -> dict | None:
    """tenants' hook, inside the transaction that changed the roster: the pool follows at once."""
    pool = active_pool(course)
    return None if pool is None else pool_sync_roster(actor=actor, pool=pool).as_dict()


def roster_preview(*, course: Course, keep_user_ids: set[int], new_accounts: int) -> dict | None:
    """tenants' hook: what the pool would do if the roster became ``keep_user_ids`` plus ``new_accounts``
    new students. Reads only; the hand-over count assumes the leaving seats' desktops are live."""
    pool = active_pool(course)
    if pool is None:
        return None
    seats = list(pool.seats.filter(state=Seat.State.ACTIVE).values_list("student_id", "desktop_id"))
    seated = {student for student, _desktop in seats if student is not None}
    spares = sum(1 for student, _desktop in seats if student is None)
    joining = len(keep_user_ids - seated) + new_accounts
    leaving = sum(
        1 for student, desktop in seats if student is not None and student not in keep_user_ids and desktop is not None
    )
    handed = min(joining, leaving)
    assigned = min(joining - handed, spares)
    roster_after = len(keep_user_ids & seated) + joining
    seats_after = seats_wanted(pool, roster_after)
    # Leavers' seats left over stay as spare seats up to the pool's spares; the rest are retired.
    spares_missing = max(0, (seats_after - roster_after) - (spares - assigned))
    freed = min(leaving - handed, spares_missing)
    retired = leaving - handed - freed
    # New seats: the students left without one, and spare seats again up to the pool's size.
    added = max(0, seats_after - (len(seats) - retired))
    shortfalls = (
        quota_check(tenant=pool.tenant, course=course, amounts=seat_amounts(pool.flavor, added)) if added else []
    )
    return {
        "pool": pool.pk,
        "seats_now": len(seats),
        "seats_after": seats_after,
        "assigned": assigned,
        "added": added,
        "handed_over": handed + assigned,  # a spare seat given to a student is reset and handed over too
        "freed": freed,
        "retired": retired,
        "shortfall": str(QuotaExceeded(shortfalls).message) if shortfalls else "",
    }

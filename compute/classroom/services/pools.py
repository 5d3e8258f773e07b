"""Course desktop pools and their seats: a pool made for a course's roster (directly or from an
approved request), the roster followed later (hand-over, new desktops, retirement), retries of the
seats that failed, and the pool's settings.

Desktops are made and deleted by compute's own services. ``actor=None`` means the platform itself
(an approved request being fulfilled); desktops need a person to be created for, so the pool's
course teacher stands in there."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import Action
from audit.services import event_record
from common.db import retry_on_deadlock
from common.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, ServiceError
from compute import locks as compute_locks
from compute import services as compute_services
from compute.classroom import locks
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.classroom.services.access import require_manage, stand_in
from compute.classroom.services.schedule import desktops_on_now, schedule_minutes
from compute.models import Desktop, Endpoint, Flavor, ImageVersion
from compute.quota import flavor_share
from tenants import permissions as tenant_permissions
from tenants.models import ApprovalRequest, Course, RosterEntry
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_check
from tenants.services import request_hand_over

if TYPE_CHECKING:
    from tenants.models import User

log = logging.getLogger(__name__)


def seat_amounts(flavor: Flavor, seats: int = 1) -> ResourceAmounts:
    """What ``seats`` desktops of this flavor take from the quotas: compute's own count (one source)."""
    return flavor_share(flavor, count=seats)


def _roster_students(course: Course) -> list[User]:
    return [e.user for e in RosterEntry.objects.filter(course=course).select_related("user").order_by("student_number")]


def seats_wanted(pool: DesktopPool, roster_size: int) -> int:
    """The pool's size: one seat per student on the roster, at least ``seat_target`` (the rest spare)."""
    return max(pool.seat_target, roster_size)


def _seat_desktop_create(
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


@retry_on_deadlock
def _seat_provision(*, pool_id: int, seat_id: int, creator: User, start: bool | None) -> bool | None:
    """One seat's desktop requested in its own transaction (run again when MariaDB picks it as a
    deadlock victim beside a worker committing another desktop's quota). None: nothing to do; else
    whether its desktop is made running."""
    with transaction.atomic():
        # The pool's lock orders this with a roster sync or a retry of the same seat.
        pool = locks.pool_lock(pool_id)
        seat = Seat.objects.select_related("student").get(pk=seat_id)
        if seat.desktop_id is not None or seat.state != Seat.State.ACTIVE:
            return None
        start = desktops_on_now(pool) if start is None else start
        seat.desktop = _seat_desktop_create(pool=pool, student=seat.student, creator=creator, start=start)
        seat.error = ""
        seat.save(update_fields=["desktop", "error"])
    return start


def _seats_provision(*, pool_id: int, creator: User) -> int:
    """Request the desktops of a new pool's seats, one transaction each, so that the worker starts
    on the first while the others are still being written (60 rows take ~2 s, a tenth of the
    whole provisioning). A refusal (no capacity left, a budget) ends it: the seats left without a
    desktop keep the reason and are retried from the pool page. Returns how many were requested."""
    requested, start = 0, None
    seat_ids = list(
        Seat.objects.filter(pool_id=pool_id, state=Seat.State.ACTIVE, desktop__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for seat_id in seat_ids:
        try:
            made = _seat_provision(pool_id=pool_id, seat_id=seat_id, creator=creator, start=start)
        except ServiceError as exc:
            left = Seat.objects.filter(pk__in=seat_ids, state=Seat.State.ACTIVE, desktop__isnull=True)
            left.update(error=exc.message[:500])
            log.warning("pool %s: %s seats without a desktop: %s", pool_id, left.count(), exc.message)
            break
        if made is not None:
            start, requested = made, requested + 1
    return requested


def pool_seats_provision(*, actor: User | None, pool: DesktopPool) -> int:
    """Request the desktops of the pool's seats that have none yet (a creation cut short, e.g. by a
    deadlock while seeding beside a live worker); returns how many were requested."""
    require_manage(actor, pool)
    return _seats_provision(pool_id=pool.pk, creator=stand_in(actor, pool.course))


def _pool_policy(
    persistence: str, lead_minutes: int, shutdown_after_minutes: int, shutdown_deadline_minutes: int | None
) -> dict:
    """The persistence and schedule offsets a new pool asks for, checked (InvalidInput), as its fields."""
    if persistence not in DesktopPool.Persistence.values:
        raise InvalidInput(_("未知的保留策略。"), code=ErrorCode.POOL_PERSISTENCE_INVALID)
    minutes = schedule_minutes(
        lead_minutes=lead_minutes,
        shutdown_after_minutes=shutdown_after_minutes,
        shutdown_deadline_minutes=shutdown_deadline_minutes,
    )
    return {"persistence": persistence, **minutes}


def _refuse_a_second_pool(course: Course) -> None:
    if DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).exists():
        raise Conflict(_("该课程已有桌面池。"), code=ErrorCode.POOL_EXISTS)


def pool_create(
    *,
    actor: User | None,
    course: Course,
    image_version: ImageVersion,
    flavor: Flavor,
    persistence: str = DesktopPool.Persistence.PERSISTENT,
    lead_minutes: int = 15,
    shutdown_after_minutes: int = 10,
    shutdown_deadline_minutes: int | None = None,
    endpoint: Endpoint | None = None,
    request: ApprovalRequest | None = None,
    seats: int = 0,
) -> DesktopPool:
    """One desktop per student on the roster, and spare seats up to ``seats`` when it asks for more.
    A pool larger than the quotas is refused, with the shortfall, before anything is created."""
    if actor is not None and not tenant_permissions.can_manage_course(actor, course):
        raise Forbidden(_("只有课程教师或院系管理员可以为课程创建桌面池。"), code=ErrorCode.POOL_FORBIDDEN)
    policy = _pool_policy(persistence, lead_minutes, shutdown_after_minutes, shutdown_deadline_minutes)
    if image_version.status != ImageVersion.Status.READY:
        raise InvalidInput(_("镜像版本尚不可用。"), code=ErrorCode.IMAGE_NOT_READY)
    creator = stand_in(actor, course)
    with transaction.atomic():
        course = locks.course_lock(course.pk)
        _refuse_a_second_pool(course)
        if request is not None:
            # The request's reservation held the seats until now; each desktop reserves its own
            # share as it is created, so the request's hold is turned over to them here. The
            # request is delivered once the desktops run (services.fulfilment).
            request = request_hand_over(request=request, detail={"course": course.code})
        students = _roster_students(course)
        if not students:
            raise InvalidInput(_("课程名单为空，请先导入学生名单。"), code=ErrorCode.ROSTER_EMPTY)
        total = max(int(seats or 0), len(students))
        shortfalls = quota_check(tenant=course.tenant, course=course, amounts=seat_amounts(flavor, total))
        if shortfalls:
            raise QuotaExceeded(shortfalls)
        pool = DesktopPool.objects.create(
            course=course,
            tenant=course.tenant,
            name=f"{course.code} {course.name}"[:100],
            image_version=image_version,
            flavor=flavor,
            endpoint=endpoint,
            **policy,
            request=request,
            created_by=actor,
            seat_target=total if total > len(students) else 0,
        )
        spares = [None] * (total - len(students))
        Seat.objects.bulk_create([Seat(pool=pool, student=student) for student in [*students, *spares]])
        event_record(
            action=Action.POOL_CREATED,
            actor=actor,
            target=pool,
            tenant=pool.tenant,
            detail={
                "course": course.code,
                "seats": total,
                "spare_seats": len(spares),
                "image": str(image_version),
                "flavor": flavor.name,
                "persistence": persistence,
                "request": request.pk if request else None,
            },
        )
    # The pool and its seats are committed (or refused) as one; each desktop is then requested in
    # its own transaction, so provisioning starts with the first seat.
    _seats_provision(pool_id=pool.pk, creator=creator)
    if request is not None:
        from compute.classroom.services.fulfilment import pool_request_progress

        pool_request_progress(pool.pk)  # seats refused at once (no capacity) show on the request now
    return pool


def _payload_objects(request: ApprovalRequest) -> tuple[dict, ImageVersion, Flavor]:
    payload = request.payload or {}
    version = ImageVersion.objects.filter(pk=payload.get("image_version")).first()
    flavor = Flavor.objects.filter(pk=payload.get("flavor")).first()
    if version is None or flavor is None:
        raise InvalidInput(_("申请中的镜像或规格已不存在。"), code=ErrorCode.REQUEST_PAYLOAD_INVALID)
    return payload, version, flavor


def pool_create_from_request(*, request: ApprovalRequest) -> DesktopPool:
    """Fulfil an approved course-desktop request: its payload names image version, flavor and policy."""
    payload, version, flavor = _payload_objects(request)
    return pool_create(
        actor=None,
        course=request.course,
        image_version=version,
        flavor=flavor,
        persistence=payload.get("persistence", DesktopPool.Persistence.PERSISTENT),
        lead_minutes=int(payload.get("lead_minutes", 15)),
        shutdown_after_minutes=int(payload.get("shutdown_after_minutes", 10)),
        shutdown_deadline_minutes=payload.get("shutdown_deadline_minutes"),
        request=request,
        seats=int(payload.get("seats") or 0),
    )


def course_request_submit(
    *,
    actor: User,
    course: Course,
    image_version: ImageVersion,
    flavor: Flavor,
    persistence: str = DesktopPool.Persistence.PERSISTENT,
    lead_minutes: int = 15,
    shutdown_after_minutes: int = 10,
    shutdown_deadline_minutes: int | None = None,
    reason: str = "",
) -> ApprovalRequest:
    """The pool wizard's request: one seat per roster student; tenants checks the quotas and routes it."""
    from tenants.models import RequestKind
    from tenants.services import request_submit

    seats = RosterEntry.objects.filter(course=course).count()
    if not seats:
        raise InvalidInput(_("课程名单为空，请先导入学生名单。"), code=ErrorCode.ROSTER_EMPTY)
    policy = _pool_policy(persistence, lead_minutes, shutdown_after_minutes, shutdown_deadline_minutes)
    _refuse_a_second_pool(course)
    return request_submit(
        actor=actor,
        tenant=course.tenant,
        kind=RequestKind.COURSE_DESKTOPS if not flavor.gpus else RequestKind.GPU_ENVIRONMENT,
        title=ngettext("%(code)s 课程桌面（%(seats)s 座）", "%(code)s 课程桌面（%(seats)s 座）", seats)
        % {"code": course.code, "seats": seats},
        amounts=seat_amounts(flavor, seats),
        course=course,
        payload={
            "image_version": image_version.pk,
            "flavor": flavor.pk,
            **policy,
            "seats": seats,
        },
        reason=reason,
    )


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

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "handed_over": self.handed_over,
            "retired": self.retired,
            "pending": self.pending,
            "waiting": self.waiting,
            "assigned": self.assigned,
            "spares_added": self.spares_added,
        }

    def __bool__(self) -> bool:
        return any(self.as_dict().values())


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


def _seat_hand_over(seat: Seat, student: User) -> bool:
    """Give the seat's desktop to another student, reset to the golden image first (等保: no residue);
    compute's ``desktop_hand_over`` does it. False when the desktop is not live (busy, in error)."""
    if seat.desktop_id is None:
        return False
    previous = seat.student
    if previous is None and seat.desktop.state in Desktop.TRANSIENT:
        return False
    try:
        desktop = compute_services.desktop_hand_over(
            actor=None,
            desktop=seat.desktop,
            owner=student,
            name=f"{seat.pool.course.code}-{student.username}",
            image_version=seat.pool.image_version,
            keep_data_disks=seat.pool.leaver_disks == DesktopPool.LeaverDisks.KEEP,
        )
    except InvalidTransition:
        return False
    seat.student = student
    seat.save(update_fields=["student"])
    event_record(
        action=Action.SEAT_HANDED_OVER,
        target=desktop,
        tenant=seat.pool.tenant,
        detail={
            "pool": seat.pool_id,
            "from": previous.username if previous else None,
            "to": student.username,
            "data_disks": seat.pool.leaver_disks,
        },
    )
    return True


@dataclass
class _Plan:
    joining: list  # students on the roster without a seat
    leaving: list  # seats whose student left, or that wait to be retired
    spares: list  # active seats without a student
    spares_wanted: int  # how many spare seats the pool keeps once the roster is seated


def _sync_plan(pool: DesktopPool) -> _Plan:
    roster = _roster_students(pool.course)
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
        elif not _seat_hand_over(seat, student):
            continue
        plan.joining.pop(0)
        plan.spares.remove(seat)
        result.assigned += 1


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
        if _seat_hand_over(seat, joining[0]):
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
                seat.desktop = _seat_desktop_create(pool=pool, student=student, creator=creator, start=start)
                seat.save(update_fields=["desktop"])
                continue
            except ServiceError as exc:
                refusal = exc.message[:500]
        seat.error = refusal
        seat.save(update_fields=["error"])
        result.waiting += 1


def pool_sync_roster(*, actor: User | None, pool: DesktopPool) -> SyncResult:
    """Follow the roster: new students get a seat (a leaving student's desktop, reset, when there is
    one; else a new desktop within quota, or a seat that waits with the reason); seats of students
    who left are wiped and deleted. Called by the roster's own changes (``roster_changed``) too."""
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


def _active_pool(course: Course) -> DesktopPool | None:
    return DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).select_related("course").first()


def roster_changed(*, course: Course, actor: User | None) -> dict | None:
    """tenants' hook, inside the transaction that changed the roster: the pool follows at once."""
    pool = _active_pool(course)
    return None if pool is None else pool_sync_roster(actor=actor, pool=pool).as_dict()


def roster_preview(*, course: Course, keep_user_ids: set[int], new_accounts: int) -> dict | None:
    """tenants' hook: what the pool would do if the roster became ``keep_user_ids`` plus ``new_accounts``
    new students. Reads only; the hand-over count assumes the leaving seats' desktops are live."""
    pool = _active_pool(course)
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
    # New seats: the students left without one, and spare seats again up to the pool's size.
    added = max(0, seats_after - (len(seats) - (leaving - handed)))
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
        "retired": leaving - handed,
        "shortfall": str(QuotaExceeded(shortfalls).message) if shortfalls else "",
    }


def course_links(*, course: Course, user: User) -> list[tuple[str, str]]:
    """tenants' hook: the course page links to its pool."""
    pool = _active_pool(course)
    if pool is None:
        return []
    return [(_("课程桌面池"), reverse("classroom:pool", args=[pool.pk]))]


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
            seat.desktop = _seat_desktop_create(pool=pool, student=seat.student, creator=creator)
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


def pool_settings_update(
    *,
    actor: User | None,
    pool: DesktopPool,
    persistence: str | None = None,
    lead_minutes: int | None = None,
    shutdown_after_minutes: int | None = None,
    shutdown_deadline_minutes: int | None = None,
    leaver_disks: str | None = None,
) -> DesktopPool:
    require_manage(actor, pool)
    with transaction.atomic():
        pool = locks.pool_lock(pool.pk)
        changes = {}
        if persistence is not None:
            if persistence not in DesktopPool.Persistence.values:
                raise InvalidInput(_("未知的保留策略。"), code=ErrorCode.POOL_PERSISTENCE_INVALID)
            changes["persistence"] = persistence
        if leaver_disks is not None:
            if leaver_disks not in DesktopPool.LeaverDisks.values:
                raise InvalidInput(_("未知的数据盘处理方式。"), code=ErrorCode.POOL_LEAVER_DISKS_INVALID)
            changes["leaver_disks"] = leaver_disks
        asked = {
            "lead_minutes": lead_minutes,
            "shutdown_after_minutes": shutdown_after_minutes,
            "shutdown_deadline_minutes": shutdown_deadline_minutes,
        }
        # The offsets are checked together, as they will be: the new values over the pool's current ones.
        minutes = schedule_minutes(**{f: getattr(pool, f) if v is None else v for f, v in asked.items()})
        changes.update({f: minutes[f] for f, v in asked.items() if v is not None})
        for field, value in changes.items():
            setattr(pool, field, value)
        pool.save()
        event_record(action=Action.POOL_CHANGED, actor=actor, target=pool, tenant=pool.tenant, detail=changes)
    return pool

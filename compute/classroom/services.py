"""Writes of the classroom: pools and seats, roster sync, resets, power, schedules, consoles, authoring.

Every service is keyword-only, runs in one transaction, records its audit event there and
starts hypervisor work with ``transaction.on_commit``. Desktops are made and deleted by
compute's own services; power and reset reuse compute's tasks, dispatched here so that the
schedule (which acts for no person) and a teacher share one path.

``actor=None`` means the platform itself (the schedule, an approved request being fulfilled).
Desktops need a person to be created for, so the pool's course teacher stands in there.
"""

import datetime
import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError
from common.tasks import enqueue
from compute import hooks
from compute import services as compute_services
from compute.classroom import locks, task_names
from compute.classroom.errors import ErrorCode
from compute.classroom.models import AuthoringSession, ClassSession, ConsoleTicket, DesktopPool, ScheduleException, Seat
from compute.drivers.base import DriverError
from compute.drivers.base import ErrorCode as DriverErrorCode
from compute.models import Desktop, Endpoint, Flavor, Image, ImageVersion, Visibility
from tenants import permissions as tenant_permissions
from tenants.models import ApprovalRequest, ClassTime, Course, RosterEntry
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_check, quota_release
from tenants.services import request_fulfil

log = logging.getLogger(__name__)

TICKET_SECONDS = 60
# Minutes after a class at which its desktops are powered off even with a student connected,
# unless the pool says otherwise (never before its own shutdown delay).
DEFAULT_SHUTDOWN_DEADLINE = 30
MAX_SCHEDULE_MINUTES = 240
MAX_DEADLINE_MINUTES = 480
# A console is "connected" while its proxy reports traffic at least this often.
CONSOLE_SEEN_SECONDS = 90


def seat_amounts(flavor: Flavor, seats: int = 1) -> ResourceAmounts:
    """What ``seats`` desktops of this flavor take from the quotas (as compute reserves them)."""
    return ResourceAmounts(
        vcpu=flavor.vcpus,
        ram_gib=-(-flavor.memory_mib // 1024),
        disk_gib=flavor.disk_gib,
        gpus=flavor.gpus,
        desktops=1,
    ) * int(seats)


def can_manage_pool(user, pool: DesktopPool) -> bool:
    return user is not None and tenant_permissions.can_manage_course(user, pool.course)


def _require_manage(actor, pool: DesktopPool) -> None:
    if actor is not None and not can_manage_pool(actor, pool):
        raise Forbidden(_("只有课程教师或院系管理员可以管理该桌面池。"), code=ErrorCode.POOL_FORBIDDEN)


def _stand_in(actor, course: Course):
    """Who compute's desktop services act for: the person, or the course's teacher for the platform."""
    return actor if actor is not None else course.teacher


# --- pools ----------------------------------------------------------------------------------


def schedule_minutes(*, lead_minutes, shutdown_after_minutes, shutdown_deadline_minutes=None) -> dict:
    """The pool's schedule offsets as ints, checked together; a deadline left out is the default
    (or the shutdown delay, when that is later). Raises InvalidInput."""
    try:
        lead, after = int(lead_minutes), int(shutdown_after_minutes)
        deadline = (
            max(DEFAULT_SHUTDOWN_DEADLINE, after)
            if shutdown_deadline_minutes in (None, "")
            else int(shutdown_deadline_minutes)
        )
    except (TypeError, ValueError):
        raise InvalidInput(_("开关机时间必须是整数分钟。"), code=ErrorCode.POOL_SCHEDULE_INVALID) from None
    if not (0 <= lead <= MAX_SCHEDULE_MINUTES and 0 <= after <= MAX_SCHEDULE_MINUTES):
        raise InvalidInput(_("开关机提前/延后时间必须在 0 到 240 分钟之间。"), code=ErrorCode.POOL_SCHEDULE_INVALID)
    if not after <= deadline <= MAX_DEADLINE_MINUTES:
        raise InvalidInput(
            ngettext(
                "最迟关机时间必须在课后关机时间（%(after)s 分钟）到 480 分钟之间。",
                "最迟关机时间必须在课后关机时间（%(after)s 分钟）到 480 分钟之间。",
                after,
            )
            % {"after": after},
            code=ErrorCode.POOL_DEADLINE_INVALID,
            detail={"shutdown_after_minutes": after, "shutdown_deadline_minutes": deadline},
        )
    return {"lead_minutes": lead, "shutdown_after_minutes": after, "shutdown_deadline_minutes": deadline}


def _roster_students(course: Course) -> list:
    return [e.user for e in RosterEntry.objects.filter(course=course).select_related("user").order_by("student_number")]


def _seat_desktop_create(*, pool: DesktopPool, student, creator) -> Desktop:
    return compute_services.desktop_create(
        actor=creator,
        tenant=pool.tenant,
        image_version=pool.image_version,
        flavor=pool.flavor,
        owner=student,
        course=pool.course,
        name=f"{pool.course.code}-{student.username}",
        endpoint=pool.endpoint,
    )


def _seat_provision(*, pool: DesktopPool, student, creator) -> Seat:
    desktop = _seat_desktop_create(pool=pool, student=student, creator=creator)
    return Seat.objects.create(pool=pool, student=student, desktop=desktop)


def _seats_provision(*, pool_id: int, creator) -> int:
    """Request the desktops of a new pool's seats, one transaction each, so that the worker starts
    on the first while the others are still being written (60 rows take ~2 s, a tenth of the
    whole provisioning). A refusal (no capacity left, a budget) ends it: the seats left without a
    desktop keep the reason and are retried from the pool page. Returns how many were requested."""
    requested = 0
    seat_ids = list(
        Seat.objects.filter(pool_id=pool_id, state=Seat.State.ACTIVE, desktop__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for seat_id in seat_ids:
        try:
            with transaction.atomic():
                # The pool's lock orders this with a roster sync or a retry of the same seat.
                pool = locks.pool_lock(pool_id)
                seat = Seat.objects.select_related("student").get(pk=seat_id)
                if seat.desktop_id is not None or seat.state != Seat.State.ACTIVE:
                    continue
                seat.desktop = _seat_desktop_create(pool=pool, student=seat.student, creator=creator)
                seat.error = ""
                seat.save(update_fields=["desktop", "error"])
                requested += 1
        except ServiceError as exc:
            left = Seat.objects.filter(pk__in=seat_ids, state=Seat.State.ACTIVE, desktop__isnull=True)
            left.update(error=exc.message[:500])
            log.warning("pool %s: %s seats without a desktop: %s", pool_id, left.count(), exc.message)
            break
    return requested


def pool_create(
    *,
    actor,
    course: Course,
    image_version: ImageVersion,
    flavor: Flavor,
    persistence: str = DesktopPool.Persistence.PERSISTENT,
    lead_minutes: int = 15,
    shutdown_after_minutes: int = 10,
    shutdown_deadline_minutes: int | None = None,
    endpoint: Endpoint | None = None,
    request: ApprovalRequest | None = None,
) -> DesktopPool:
    """One desktop per student on the roster. A roster larger than the quotas is refused, with
    the shortfall, before anything is created."""
    if actor is not None and not tenant_permissions.can_manage_course(actor, course):
        raise Forbidden(_("只有课程教师或院系管理员可以为课程创建桌面池。"), code=ErrorCode.POOL_FORBIDDEN)
    if persistence not in DesktopPool.Persistence.values:
        raise InvalidInput(_("未知的保留策略。"), code=ErrorCode.POOL_PERSISTENCE_INVALID)
    minutes = schedule_minutes(
        lead_minutes=lead_minutes,
        shutdown_after_minutes=shutdown_after_minutes,
        shutdown_deadline_minutes=shutdown_deadline_minutes,
    )
    if image_version.status != ImageVersion.Status.READY:
        raise InvalidInput(_("镜像版本尚不可用。"), code=ErrorCode.IMAGE_NOT_READY)
    creator = _stand_in(actor, course)
    with transaction.atomic():
        course = locks.course_lock(course.pk)
        if DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).exists():
            raise Conflict(_("该课程已有桌面池。"), code=ErrorCode.POOL_EXISTS)
        if request is not None:
            # The request's reservation held the seats until now; each desktop reserves its own
            # share as it is created, so the request's hold is turned over to them here.
            request = request_fulfil(request=request, detail={"course": course.code})
            if request.reservation_id:
                quota_release(reservation=request.reservation)
        students = _roster_students(course)
        if not students:
            raise InvalidInput(_("课程名单为空，请先导入学生名单。"), code=ErrorCode.ROSTER_EMPTY)
        shortfalls = quota_check(tenant=course.tenant, course=course, amounts=seat_amounts(flavor, len(students)))
        if shortfalls:
            raise QuotaExceeded(shortfalls)
        pool = DesktopPool.objects.create(
            course=course,
            tenant=course.tenant,
            name=f"{course.code} {course.name}"[:100],
            image_version=image_version,
            flavor=flavor,
            endpoint=endpoint,
            persistence=persistence,
            **minutes,
            request=request,
            created_by=actor,
        )
        Seat.objects.bulk_create([Seat(pool=pool, student=student) for student in students])
        event_record(
            action=Action.POOL_CREATED,
            actor=actor,
            target=pool,
            tenant=pool.tenant,
            detail={
                "course": course.code,
                "seats": len(students),
                "image": str(image_version),
                "flavor": flavor.name,
                "persistence": persistence,
                "request": request.pk if request else None,
            },
        )
    # The pool and its seats are committed (or refused) as one; each desktop is then requested in
    # its own transaction, so provisioning starts with the first seat.
    _seats_provision(pool_id=pool.pk, creator=creator)
    return pool


def _payload_objects(request: ApprovalRequest):
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
    )


def fulfil_course_desktops(request: ApprovalRequest) -> None:
    """The fulfiller tenants calls once a course-desktop request is approved: queue the pool's creation.

    A GPU environment request without a course is no pool: it is left as it is."""
    if request.course_id is None:
        return
    enqueue(task_names.POOL_FULFIL, request.pk, queue="default")


def course_request_submit(
    *,
    actor,
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
    if persistence not in DesktopPool.Persistence.values:
        raise InvalidInput(_("未知的保留策略。"), code=ErrorCode.POOL_PERSISTENCE_INVALID)
    minutes = schedule_minutes(
        lead_minutes=lead_minutes,
        shutdown_after_minutes=shutdown_after_minutes,
        shutdown_deadline_minutes=shutdown_deadline_minutes,
    )
    if DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).exists():
        raise Conflict(_("该课程已有桌面池。"), code=ErrorCode.POOL_EXISTS)
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
            "persistence": persistence,
            **minutes,
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

    def as_dict(self) -> dict:
        return {"added": self.added, "handed_over": self.handed_over, "retired": self.retired, "pending": self.pending}


def _seat_retire(seat: Seat, *, creator) -> bool:
    """Wipe and delete the seat's desktop (compute deletes the VM with its disks). False: try later."""
    desktop = seat.desktop
    if desktop is not None and desktop.state != Desktop.State.DELETED:
        desktop = locks.desktop_lock(desktop.pk)
        if desktop.state == Desktop.State.DELETING:
            pass
        elif desktop.state in Desktop.TRANSIENT:
            seat.state = Seat.State.RETIRING
            seat.save(update_fields=["state"])
            return False
        else:
            compute_services.desktop_delete(actor=creator, desktop=desktop)
    seat.state = Seat.State.RETIRED
    seat.retired_at = timezone.now()
    seat.save(update_fields=["state", "retired_at"])
    return True


def _seat_hand_over(seat: Seat, student) -> bool:
    """Give the seat's desktop to another student, reset to the golden image first (等保: no residue)."""
    desktop = locks.desktop_lock(seat.desktop_id) if seat.desktop_id else None
    if desktop is None or desktop.state not in Desktop.LIVE:
        return False
    previous = seat.student
    _reset_locked(desktop, version=seat.pool.image_version)
    desktop.owner = student
    desktop.name = f"{seat.pool.course.code}-{student.username}"
    desktop.save(update_fields=["owner", "name", "updated_at"])
    # Usage is metered to the owner of the moment: billing closes the leaving student's interval
    # here, in this transaction, and opens the newcomer's.
    hooks.desktop_changed(desktop=desktop, at=timezone.now(), reason="handed_over")
    seat.student = student
    seat.save(update_fields=["student"])
    event_record(
        action=Action.SEAT_HANDED_OVER,
        target=desktop,
        tenant=seat.pool.tenant,
        detail={"pool": seat.pool_id, "from": previous.username, "to": student.username},
    )
    return True


def pool_sync_roster(*, actor, pool: DesktopPool) -> SyncResult:
    """Follow the roster: new students get a seat (a leaving student's desktop, reset, when there is
    one; else a new desktop within quota); seats of students who left are wiped and deleted."""
    _require_manage(actor, pool)
    result = SyncResult()
    with transaction.atomic():
        pool = locks.pool_lock(pool.pk)
        if pool.state != DesktopPool.State.ACTIVE:
            raise Conflict(_("桌面池已停用。"), code=ErrorCode.POOL_RETIRED)
        creator = _stand_in(actor, pool.course)
        roster = _roster_students(pool.course)
        roster_ids = {s.pk for s in roster}
        seats = list(pool.seats.exclude(state=Seat.State.RETIRED).select_related("student", "desktop", "pool__course"))
        seated = {s.student_id for s in seats if s.state == Seat.State.ACTIVE}
        joining = [s for s in roster if s.pk not in seated]
        leaving = [s for s in seats if s.student_id not in roster_ids or s.state == Seat.State.RETIRING]
        for seat in list(leaving):
            if not joining or seat.state == Seat.State.RETIRING:
                break
            if _seat_hand_over(seat, joining[0]):
                joining.pop(0)
                leaving.remove(seat)
                result.handed_over += 1
        if joining:
            shortfalls = quota_check(
                tenant=pool.tenant, course=pool.course, amounts=seat_amounts(pool.flavor, len(joining))
            )
            if shortfalls:
                raise QuotaExceeded(shortfalls)
            for student in joining:
                _seat_provision(pool=pool, student=student, creator=creator)
                result.added += 1
        for seat in leaving:
            if _seat_retire(seat, creator=creator):
                result.retired += 1
            else:
                result.pending += 1
        if result.added or result.handed_over or result.retired or result.pending:
            event_record(
                action=Action.POOL_ROSTER_SYNCED, actor=actor, target=pool, tenant=pool.tenant, detail=result.as_dict()
            )
    return result


def seat_retry(*, actor, seat: Seat) -> Desktop:
    """Provision a failed seat's desktop again (compute's retry, for the teacher's retry button);
    a seat whose desktop could not even be requested gets it requested now."""
    _require_manage(actor, seat.pool)
    creator = _stand_in(actor, seat.pool.course)
    if seat.desktop_id is not None:
        return compute_services.desktop_retry(actor=creator, desktop=seat.desktop)
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


def _failed_seats(pool: DesktopPool):
    return pool.seats.filter(state=Seat.State.ACTIVE).filter(
        Q(desktop__state=Desktop.State.ERROR) | Q(desktop__isnull=True) & ~Q(error="")
    )


def pool_retry_failed(*, actor, pool: DesktopPool) -> int:
    _require_manage(actor, pool)
    count = 0
    for seat in _failed_seats(pool).select_related("desktop", "pool__course").order_by("pk"):
        seat_retry(actor=actor, seat=seat)
        count += 1
    return count


# --- power ----------------------------------------------------------------------------------


def _power_locked(desktop: Desktop, verb: str) -> bool:
    """Start/stop/reboot a locked desktop through compute's task; False when its state does not allow it."""
    wanted = {"start": Desktop.State.STOPPED, "stop": Desktop.State.RUNNING, "reboot": Desktop.State.RUNNING}[verb]
    if desktop.state != wanted:
        return False
    getattr(desktop, verb)()
    desktop.task_id = enqueue(task_names.DESKTOP_POWER, desktop.pk, verb, queue=desktop.endpoint.site.celery_queue)
    desktop.save()
    return True


def _active_desktop_ids(pool: DesktopPool, *, exclude: Iterable[int] = ()) -> list[int]:
    return list(
        pool.seats.filter(state=Seat.State.ACTIVE, desktop__isnull=False)
        .exclude(desktop_id__in=list(exclude))
        .values_list("desktop_id", flat=True)
        .order_by("desktop_id")
    )


def _power_many(desktop_ids: list[int], verb: str) -> int:
    changed = 0
    for desktop_id in desktop_ids:
        desktop = locks.desktop_lock(desktop_id, with_site=True)
        changed += _power_locked(desktop, verb)
    return changed


def pool_power(*, actor, pool: DesktopPool, verb: str) -> int:
    """Start or stop every desktop of the pool now (a teacher's bulk action); returns how many changed."""
    if verb not in ("start", "stop", "reboot"):
        raise InvalidInput(_("未知操作。"), code=ErrorCode.POOL_ACTION_INVALID)
    _require_manage(actor, pool)
    with transaction.atomic():
        changed = _power_many(_active_desktop_ids(pool), verb)
        event_record(
            action=Action.POOL_POWERED,
            actor=actor,
            target=pool,
            tenant=pool.tenant,
            detail={"verb": verb, "n": changed},
        )
    return changed


def seat_power(*, actor, seat: Seat, verb: str) -> Desktop:
    """A teacher's start/stop/reboot of one seat; compute's service checks the state and records it."""
    _require_manage(actor, seat.pool)
    service = {
        "start": compute_services.desktop_start,
        "stop": compute_services.desktop_stop,
        "reboot": compute_services.desktop_reboot,
    }.get(verb)
    if service is None or seat.desktop is None:
        raise InvalidInput(_("未知操作。"), code=ErrorCode.POOL_ACTION_INVALID)
    return service(actor=actor, desktop=seat.desktop)


# --- reset ----------------------------------------------------------------------------------


def _reset_locked(desktop: Desktop, *, version: ImageVersion | None) -> None:
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
    _reset_locked(desktop, version=seat.pool.image_version if move_version else None)
    return True


def seat_reset(*, actor, seat: Seat) -> Seat:
    """Reset one seat to the golden image. During a class the seat keeps its image version;
    a newer version of the pool arrives at a reset outside class time."""
    _require_manage(actor, seat.pool)
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


def pool_reset(*, actor, pool: DesktopPool) -> int:
    """Reset every seat to the golden image (the pool's current version). Refused during a class."""
    _require_manage(actor, pool)
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


def desktop_rebuild_finish(*, desktop_id: int, info) -> Desktop:
    """The rebuild task made the VM again from the new version: the desktop settles as it now is."""
    return compute_services.desktop_settle(desktop_id=desktop_id, info=info)


# --- schedule -------------------------------------------------------------------------------


def _local(value: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(value)


def _occurrence(class_time: ClassTime, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    tz = timezone.get_current_timezone()
    start = datetime.datetime.combine(day, class_time.start_time, tzinfo=tz)
    end = datetime.datetime.combine(day, class_time.end_time, tzinfo=tz)
    return start, end


def _excepted(pool: DesktopPool, day: datetime.date, class_time: ClassTime, exceptions) -> bool:
    return any(e.date == day and (e.class_time_id is None or e.class_time_id == class_time.pk) for e in exceptions)


def classes_between(pool: DesktopPool, start: datetime.datetime, end: datetime.datetime, *, exceptions=None):
    """The pool's classes (class time, date, starts, ends) that overlap [start, end), within the term
    and outside its holidays and skipped classes, in time order."""
    course = pool.course
    if exceptions is None:
        exceptions = list(pool.exceptions.all())
    class_times = list(course.class_times.all())
    result = []
    day = _local(start).date() - datetime.timedelta(days=1)
    last = _local(end).date()
    while day <= last:
        if course.term_start <= day <= course.term_end:
            for class_time in class_times:
                if class_time.weekday != day.isoweekday():
                    continue
                begins, ends = _occurrence(class_time, day)
                if ends > start and begins < end and not _excepted(pool, day, class_time, exceptions):
                    result.append((class_time, day, begins, ends))
        day += datetime.timedelta(days=1)
    return sorted(result, key=lambda item: item[2])


def class_in_progress(pool: DesktopPool, now: datetime.datetime | None = None):
    """(class time, date, starts, ends) of the class going on now, or None."""
    now = now or timezone.now()
    current = classes_between(pool, now, now + datetime.timedelta(seconds=1))
    return current[0] if current else None


def next_class(pool: DesktopPool, now: datetime.datetime | None = None):
    now = now or timezone.now()
    upcoming = classes_between(pool, now, now + datetime.timedelta(days=15))
    return next((item for item in upcoming if item[2] >= now), None)


def connected_desktop_ids(desktop_ids: Iterable[int], now: datetime.datetime | None = None) -> set[int]:
    """Desktops with a console open right now (the proxy reported traffic recently)."""
    now = now or timezone.now()
    return set(
        ConsoleTicket.objects.filter(
            desktop_id__in=list(desktop_ids),
            used_at__isnull=False,
            closed_at__isnull=True,
            seen_at__gte=now - datetime.timedelta(seconds=CONSOLE_SEEN_SECONDS),
        ).values_list("desktop_id", flat=True)
    )


def _session_for(pool, class_time, day, begins, ends) -> ClassSession:
    session, _created = ClassSession.objects.get_or_create(
        pool=pool, class_time=class_time, date=day, defaults={"starts_at": begins, "ends_at": ends}
    )
    return session


def _power_on_for_class(pool: DesktopPool, session: ClassSession, now) -> int:
    with transaction.atomic():
        session = locks.class_session_lock(session.pk)
        if session.powered_on_at is not None:
            return 0
        changed = _power_many(_active_desktop_ids(pool), "start")
        session.powered_on_at = now
        session.state = ClassSession.State.POWERED_ON
        session.save(update_fields=["powered_on_at", "state"])
        event_record(
            action=Action.SCHEDULE_RUN,
            target=pool,
            tenant=pool.tenant,
            detail={"step": "power_on", "class": str(session.class_time), "date": str(session.date), "n": changed},
        )
    return changed


def shutdown_deadline(pool: DesktopPool, session: ClassSession) -> datetime.datetime:
    """When the class's desktops are powered off even if a student is still connected."""
    minutes = max(pool.shutdown_deadline_minutes, pool.shutdown_after_minutes)
    return session.ends_at + datetime.timedelta(minutes=minutes)


def _wind_down(pool: DesktopPool, session: ClassSession, now) -> dict:
    """After class: stop desktops nobody is using (warn about the others and come back next tick),
    then, for a reset-after-class pool, reset each stopped seat once; done when all of that is.

    A connected student puts the shutdown off only until the pool's deadline: after it the
    desktop is powered off anyway (the student was warned on every tick before)."""
    report = {"stopped": 0, "connected": 0, "forced": 0, "reset": 0, "waiting": 0}
    with transaction.atomic():
        session = locks.class_session_lock(session.pk)
        if session.state == ClassSession.State.DONE:
            return report
        deadline = shutdown_deadline(pool, session)
        forced = now >= deadline
        seats = list(
            pool.seats.filter(state=Seat.State.ACTIVE, desktop__isnull=False).select_related(
                "desktop__endpoint__site", "student", "pool__image_version"
            )
        )
        connected = connected_desktop_ids([s.desktop_id for s in seats], now)
        forced_names = []
        for seat in seats:
            desktop = locks.desktop_lock(seat.desktop_id, with_site=True)
            if desktop.pk in connected and not forced:
                report["connected"] += 1
                continue
            if desktop.state == Desktop.State.RUNNING:
                stopped = _power_locked(desktop, "stop")
                report["stopped"] += stopped
                report["waiting"] += 1
                if stopped and desktop.pk in connected:
                    report["forced"] += 1
                    forced_names.append(seat.student.username)
            elif desktop.state == Desktop.State.STOPPED and pool.persistence == DesktopPool.Persistence.RESET:
                if seat.reset_for_id != session.pk:
                    _reset_locked(desktop, version=pool.image_version)
                    seat.reset_for = session
                    seat.save(update_fields=["reset_for"])
                    report["reset"] += 1
                    report["waiting"] += 1
            elif desktop.state in Desktop.TRANSIENT:
                report["waiting"] += 1
        if report["forced"]:
            session.forced_at = now
            session.last_warning = (
                ngettext(
                    "已到最迟关机时间，%(n)s 台仍有学生连接的桌面已强制关机：%(names)s",
                    "已到最迟关机时间，%(n)s 台仍有学生连接的桌面已强制关机：%(names)s",
                    report["forced"],
                )
                % {"n": report["forced"], "names": ", ".join(forced_names)}
            )[:500]
            log.warning("pool %s: %s", pool.pk, session.last_warning)
        elif report["connected"]:
            names = [s.student.username for s in seats if s.desktop_id in connected]
            session.warnings += 1
            session.last_warning = (
                ngettext(
                    "%(n)s 名学生仍在使用桌面，关机推迟，最迟 %(deadline)s 强制关机：%(names)s",
                    "%(n)s 名学生仍在使用桌面，关机推迟，最迟 %(deadline)s 强制关机：%(names)s",
                    len(names),
                )
                % {"n": len(names), "deadline": _local(deadline).strftime("%H:%M"), "names": ", ".join(names)}
            )[:500]
            log.warning("pool %s: %s", pool.pk, session.last_warning)
        if report["connected"] or report["waiting"]:
            session.state = ClassSession.State.SHUTTING_DOWN
        else:
            session.state = ClassSession.State.DONE
            session.finished_at = now
        session.save(update_fields=["warnings", "last_warning", "forced_at", "state", "finished_at"])
        if report["stopped"] or report["reset"] or report["connected"]:
            event_record(
                action=Action.SCHEDULE_RUN,
                target=pool,
                tenant=pool.tenant,
                result="success" if not report["connected"] else "failure",
                reason=session.last_warning if report["connected"] or report["forced"] else "",
                detail={
                    "step": "wind_down",
                    "class": str(session.class_time),
                    "date": str(session.date),
                    "deadline": deadline.isoformat(),
                    **report,
                },
            )
    return report


def shutdown_notice(desktop: Desktop, now: datetime.datetime | None = None) -> datetime.datetime | None:
    """When the schedule will power this running desktop off although its student is still on it,
    or None: the warning its student sees (console page, my desktops) until then."""
    now = now or timezone.now()
    if desktop.state != Desktop.State.RUNNING:
        return None
    seat = Seat.objects.filter(desktop=desktop, state=Seat.State.ACTIVE).select_related("pool").first()
    if seat is None or seat.pool.state != DesktopPool.State.ACTIVE:
        return None
    session = (
        ClassSession.objects.filter(
            pool=seat.pool, state=ClassSession.State.SHUTTING_DOWN, warnings__gt=0, ends_at__lte=now
        )
        .order_by("-ends_at")
        .first()
    )
    if session is None:
        return None
    deadline = shutdown_deadline(seat.pool, session)
    return deadline if now < deadline + datetime.timedelta(minutes=5) else None


def schedule_tick(*, now: datetime.datetime | None = None) -> dict:
    """One run of the schedule (Celery beat, every minute): power pools on ``lead_minutes`` before a
    class, and wind them down ``shutdown_after_minutes`` after it. Each step is done once per class."""
    now = now or timezone.now()
    summary = {"powered_on": 0, "stopped": 0, "reset": 0, "connected": 0, "forced": 0}
    pools = DesktopPool.objects.filter(state=DesktopPool.State.ACTIVE).select_related(
        "course", "tenant", "image_version"
    )
    for pool in pools:
        window = classes_between(
            pool,
            now - datetime.timedelta(hours=12),
            now + datetime.timedelta(minutes=pool.lead_minutes + 1),
        )
        for class_time, day, begins, ends in window:
            on_at = begins - datetime.timedelta(minutes=pool.lead_minutes)
            off_at = ends + datetime.timedelta(minutes=pool.shutdown_after_minutes)
            if on_at <= now < ends:
                session = _session_for(pool, class_time, day, begins, ends)
                summary["powered_on"] += _power_on_for_class(pool, session, now)
            elif now >= off_at:
                session = ClassSession.objects.filter(pool=pool, class_time=class_time, date=day).first()
                if session is None or session.state == ClassSession.State.DONE:
                    continue
                report = _wind_down(pool, session, now)
                for key in ("stopped", "reset", "connected", "forced"):
                    summary[key] += report[key]
        _seats_retire_pending(pool)
    versions_retire_unused()
    return summary


def _seats_retire_pending(pool: DesktopPool) -> None:
    pending = list(pool.seats.filter(state=Seat.State.RETIRING).select_related("desktop", "pool__course"))
    if not pending:
        return
    with transaction.atomic():
        for seat in pending:
            _seat_retire(seat, creator=pool.course.teacher)


def _parse_class_time(pool: DesktopPool, class_time_id) -> ClassTime | None:
    if class_time_id in (None, ""):
        return None
    class_time = ClassTime.objects.filter(pk=class_time_id, course=pool.course).first()
    if class_time is None:
        raise InvalidInput(_("未知课次。"), code=ErrorCode.CLASS_TIME_NOT_FOUND)
    return class_time


def schedule_exception_add(
    *, actor, pool: DesktopPool, date: datetime.date, class_time_id=None, reason: str = ""
) -> ScheduleException:
    """Skip one class (``class_time_id``) or a whole day (a holiday): the schedule leaves it alone."""
    _require_manage(actor, pool)
    class_time = _parse_class_time(pool, class_time_id)
    if class_time is not None and class_time.weekday != date.isoweekday():
        raise InvalidInput(_("该日期没有这节课。"), code=ErrorCode.CLASS_NOT_ON_DATE)
    with transaction.atomic():
        exception, _created = ScheduleException.objects.get_or_create(
            pool=pool, date=date, class_time=class_time, defaults={"reason": reason[:200], "created_by": actor}
        )
        event_record(
            action=Action.CLASS_SKIPPED,
            actor=actor,
            target=pool,
            tenant=pool.tenant,
            reason=reason[:200],
            detail={"date": str(date), "class": str(class_time) if class_time else "all"},
        )
    return exception


def schedule_exception_remove(*, actor, exception: ScheduleException) -> None:
    _require_manage(actor, exception.pool)
    with transaction.atomic():
        event_record(
            action=Action.CLASS_SKIPPED,
            actor=actor,
            target=exception.pool,
            tenant=exception.pool.tenant,
            detail={"date": str(exception.date), "removed": True},
        )
        exception.delete()


def pool_settings_update(
    *,
    actor,
    pool: DesktopPool,
    persistence=None,
    lead_minutes=None,
    shutdown_after_minutes=None,
    shutdown_deadline_minutes=None,
) -> DesktopPool:
    _require_manage(actor, pool)
    with transaction.atomic():
        pool = locks.pool_lock(pool.pk)
        changes = {}
        if persistence is not None:
            if persistence not in DesktopPool.Persistence.values:
                raise InvalidInput(_("未知的保留策略。"), code=ErrorCode.POOL_PERSISTENCE_INVALID)
            changes["persistence"] = persistence
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


# --- console --------------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def can_open_console(user, desktop: Desktop) -> bool:
    """A student opens only their own desktop's console; a course's teacher (or the tenant admin) any
    desktop of the course."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if desktop.owner_id == user.pk:
        return True
    return desktop.course_id is not None and tenant_permissions.can_manage_course(user, desktop.course)


@dataclass(frozen=True)
class ConsoleGrant:
    """What the console API hands out: a ticket, until when, and where to speak which protocol.

    ``rfb``: ``websocket_url`` is the portal's own proxy (a path), which relays VNC for one use.
    ``webmks``: a vCenter ticket; ``websocket_url`` is the host's WebMKS endpoint (absolute
    ``wss://``), for a VMware WebMKS client; the portal's noVNC page cannot speak it."""

    ticket: str
    expires_at: datetime.datetime
    websocket_url: str
    protocol: str = "rfb"


def _console_refused(desktop: Desktop, exc: DriverError) -> Conflict:
    """The 409 for a console the hypervisor would not open, saying why in the user's words."""
    if exc.code in (DriverErrorCode.UNSUPPORTED, DriverErrorCode.CONSOLE_UNSUPPORTED):
        if desktop.endpoint.kind == Endpoint.Kind.VCENTER:
            message = _(
                "该桌面所在的 vCenter 不提供网页控制台（WebMKS 票据），请使用 vSphere 客户端或 VMware Remote "
                "Console 连接此桌面。"
            )
        else:
            message = _("该虚拟化平台不提供网页控制台。")
        return Conflict(
            message,
            code=ErrorCode.CONSOLE_UNSUPPORTED,
            detail={"endpoint_kind": desktop.endpoint.kind, "reason": exc.message},
        )
    if exc.code == DriverErrorCode.INVALID_STATE:
        return Conflict(
            _("桌面已关机。请先开机，再打开控制台。"),
            code=ErrorCode.DESKTOP_STOPPED,
            detail={"state": desktop.state, "start_url": f"/api/v1/desktops/{desktop.pk}/start/"},
        )
    return Conflict(
        _("暂时无法连接虚拟化平台，请稍后再试。"), code=ErrorCode.CONSOLE_UNAVAILABLE, detail={"reason": exc.message}
    )


def console_ticket_issue(*, actor, desktop: Desktop, client: str = "") -> ConsoleGrant:
    """A random single-use ticket, valid TICKET_SECONDS, for the console of a running desktop
    (only its hash is stored); on vCenter, the endpoint's own WebMKS ticket where it issues one."""
    if not can_open_console(actor, desktop):
        raise NotFound(_("桌面不存在。"))
    if desktop.state in (Desktop.State.STOPPED, Desktop.State.STOPPING) or desktop.power_state == Desktop.Power.STOPPED:
        raise Conflict(
            _("桌面已关机。请先开机，再打开控制台。"),
            code=ErrorCode.DESKTOP_STOPPED,
            detail={"state": desktop.state, "start_url": f"/api/v1/desktops/{desktop.pk}/start/"},
        )
    if desktop.state != Desktop.State.RUNNING:
        raise Conflict(
            _("桌面当前为“%(state)s”，请稍后再打开控制台。") % {"state": desktop.get_state_display()},
            code=ErrorCode.DESKTOP_NOT_RUNNING,
            detail={"state": desktop.state},
        )
    from compute.hypervisor import driver_for

    try:
        # On vCenter this asks for a WebMKS ticket (AcquireTicket); where the endpoint has none
        # (vcsim, old hosts) the driver says so and the user is told what to use instead.
        address = driver_for(desktop.endpoint).console_address(desktop.vm_name)
    except DriverError as exc:
        raise _console_refused(desktop, exc) from exc
    expires_at = timezone.now() + datetime.timedelta(seconds=TICKET_SECONDS)
    if address.ticket and address.url:
        # The browser talks to the host directly: the portal never sees the session, so the
        # opening is audited here, when the ticket is handed out.
        event_record(
            action=Action.CONSOLE_OPENED,
            actor=actor,
            target=desktop,
            tenant=desktop.tenant,
            detail={"protocol": "webmks", "host": address.host, "client": client[:64]},
        )
        return ConsoleGrant(ticket=address.ticket, expires_at=expires_at, websocket_url=address.url, protocol="webmks")
    token = secrets.token_urlsafe(32)
    ConsoleTicket.objects.create(
        token_hash=_hash(token),
        desktop=desktop,
        user=actor,
        host=address.host or "127.0.0.1",
        port=address.port,
        expires_at=expires_at,
        client=client[:64],
    )
    return ConsoleGrant(ticket=token, expires_at=expires_at, websocket_url=console_ws_path(token))


class TicketRefused(Exception):
    """The WebSocket proxy refuses a ticket: unknown, used, expired, or the desktop moved on."""


def console_ticket_redeem(*, token: str, client: str = "") -> ConsoleTicket:
    """Use a ticket once: mark it used and audit the opening; raises TicketRefused."""
    if not token or len(token) > 100:
        raise TicketRefused("malformed")
    with transaction.atomic():
        ticket = locks.ticket_lock(_hash(token))
        if ticket is None:
            raise TicketRefused("unknown")
        if ticket.used_at is not None:
            raise TicketRefused("used")
        now = timezone.now()
        if ticket.expires_at <= now:
            raise TicketRefused("expired")
        desktop = ticket.desktop
        # Permission is checked again: the desktop may have been handed to another student.
        if desktop.state != Desktop.State.RUNNING or not can_open_console(ticket.user, desktop):
            raise TicketRefused("desktop")
        ticket.used_at = ticket.seen_at = now
        if client:
            ticket.client = client[:64]
        ticket.save(update_fields=["used_at", "seen_at", "client"])
        event_record(
            action=Action.CONSOLE_OPENED,
            actor=ticket.user,
            target=desktop,
            tenant=desktop.tenant,
            detail={"ticket": ticket.pk, "client": ticket.client},
        )
    return ticket


def console_seen(*, ticket_id: int) -> None:
    ConsoleTicket.objects.filter(pk=ticket_id, closed_at__isnull=True).update(seen_at=timezone.now())


def console_close(*, ticket_id: int, reason: str = "") -> None:
    with transaction.atomic():
        ticket = ConsoleTicket.objects.select_related("desktop__tenant", "user").filter(pk=ticket_id).first()
        if ticket is None or ticket.closed_at is not None:
            return
        ticket.closed_at = timezone.now()
        ticket.save(update_fields=["closed_at"])
        seconds = int((ticket.closed_at - (ticket.used_at or ticket.closed_at)).total_seconds())
        event_record(
            action=Action.CONSOLE_CLOSED,
            actor=ticket.user,
            target=ticket.desktop,
            tenant=ticket.desktop.tenant,
            detail={"ticket": ticket.pk, "seconds": seconds, "reason": reason[:100]},
        )


# --- golden-image authoring ------------------------------------------------------------------


def authoring_start(*, actor, course: Course, image_version: ImageVersion, flavor: Flavor) -> AuthoringSession:
    """A desktop of the teacher's own, from an image version, to install a lab's software on."""
    if not tenant_permissions.can_manage_course(actor, course):
        raise Forbidden(_("只有课程教师可以制作课程镜像。"), code=ErrorCode.POOL_FORBIDDEN)
    desktop = compute_services.desktop_create(
        actor=actor,
        tenant=course.tenant,
        image_version=image_version,
        flavor=flavor,
        owner=actor,
        course=course,
        name=f"{course.code}-authoring",
    )
    with transaction.atomic():
        session = AuthoringSession.objects.create(
            course=course, teacher=actor, source_version=image_version, desktop=desktop
        )
        event_record(
            action=Action.AUTHORING_STARTED,
            actor=actor,
            target=desktop,
            tenant=course.tenant,
            detail={"course": course.code, "image": str(image_version)},
        )
    return session


def _system_volume(desktop: Desktop) -> str:
    for disk in (desktop.hardware or {}).get("disks", []):
        if disk.get("target") == "vda" and disk.get("volume"):
            return disk["volume"]
    return f"{desktop.vm_name}-system.qcow2"


def authoring_publish(*, actor, session: AuthoringSession) -> AuthoringSession:
    """Publish the authoring desktop's disk as the image's next version (the desktop must be shut down,
    so the copy is consistent). Pools of the course move to it at their next reset outside class."""
    if not tenant_permissions.can_manage_course(actor, session.course):
        raise Forbidden(_("只有课程教师可以发布课程镜像。"), code=ErrorCode.POOL_FORBIDDEN)
    with transaction.atomic():
        session = locks.authoring_lock(session.pk)
        desktop = Desktop.objects.select_related("endpoint__site").get(pk=session.desktop_id)
        if session.state not in (AuthoringSession.State.ACTIVE, AuthoringSession.State.FAILED):
            raise Conflict(_("该镜像已在发布或已发布。"), code=ErrorCode.AUTHORING_NOT_ACTIVE)
        if desktop.state != Desktop.State.STOPPED:
            raise Conflict(_("请先关闭制作用的桌面，再发布镜像。"), code=ErrorCode.AUTHORING_DESKTOP_RUNNING)
        if desktop.endpoint.kind != Endpoint.Kind.LIBVIRT:
            raise Conflict(_("目前只能在 libvirt 端点上发布镜像。"), code=ErrorCode.AUTHORING_UNSUPPORTED)
        session.state = AuthoringSession.State.PUBLISHING
        session.last_error = ""
        session.task_id = enqueue(task_names.AUTHORING_PUBLISH, session.pk, queue=desktop.endpoint.site.celery_queue)
        session.save()
    return session


def _course_image(course, source: Image, *, actor) -> Image:
    """The image a course's publication becomes a version of: the course's own.

    A teacher may start from the platform's or the college's image, but what the course installed
    on it is the course's: published as a version of the shared image, every tenant would see it.
    The course's image is made at its first publication and named after the image it came from.
    """
    if source.visibility == Visibility.COURSE and source.course_id == course.pk:
        return source
    name = _("%(image)s（%(course)s）") % {"image": source.name, "course": course.code}
    existing = Image.objects.filter(visibility=Visibility.COURSE, course=course, name=name[:100]).first()
    if existing is not None:
        return existing
    return compute_services.image_create(
        actor=actor,
        name=name[:100],
        visibility=Visibility.COURSE,
        course=course,
        os_type=source.os_type,
        description=_("由课程镜像制作发布，基于“%(image)s”。") % {"image": source.name},
    )


def authoring_publish_finish(*, session_id: int, volume: str = "", size_bytes: int = 0, error: str = "") -> None:
    with transaction.atomic():
        session = locks.authoring_lock(session_id)
        if session.state != AuthoringSession.State.PUBLISHING:
            return
        if error:
            session.state = AuthoringSession.State.FAILED
            session.last_error = error[:2000]
            session.save(update_fields=["state", "last_error"])
            return
        source = session.source_version
        image = _course_image(session.course, source.image, actor=session.teacher)
        version = compute_services.image_version_register(
            actor=session.teacher,
            image=image,
            endpoint=source.endpoint,
            pool=source.pool,
            volume=volume,
            size_bytes=size_bytes or source.size_bytes,
        )
        session.state = AuthoringSession.State.PUBLISHED
        session.published_version = version
        session.save(update_fields=["state", "published_version"])
        moved = DesktopPool.objects.filter(
            course=session.course, state=DesktopPool.State.ACTIVE, image_version__image__in=[source.image, image]
        ).update(image_version=version)
        event_record(
            action=Action.IMAGE_PUBLISHED,
            actor=session.teacher,
            target=version,
            tenant=session.course.tenant,
            detail={"course": session.course.code, "from": str(source), "pools": moved},
        )


def _versions_in_use(version_ids: set[int]) -> set[int]:
    """Of these versions, those a desktop that is not deleted (seat, authoring or any other) or a
    pool still refers to: their golden image backs live disks or will back the next reset."""
    if not version_ids:
        return set()
    return set(
        Desktop.objects.filter(image_version_id__in=version_ids)
        .exclude(state=Desktop.State.DELETED)
        .values_list("image_version_id", flat=True)
    ) | set(DesktopPool.objects.filter(image_version_id__in=version_ids).values_list("image_version_id", flat=True))


def version_in_use(version: ImageVersion) -> bool:
    return bool(_versions_in_use({version.pk}))


def _version_tenant(version: ImageVersion):
    """The tenant whose course authored the version (the image itself may be the platform's)."""
    session = AuthoringSession.objects.filter(published_version=version).select_related("course__tenant").first()
    return session.course.tenant if session else version.image.tenant


def versions_retire_unused() -> int:
    """Course-authored versions a newer publication superseded retire once nothing uses them, and
    their golden volume is deleted from the hypervisor (``image_version_volume_delete``).

    Only versions this app made (published from an authoring desktop) are retired: the version a
    teacher started from may be the platform's base image, which other courses and tenants use and
    which the system administrator manages."""
    published = AuthoringSession.objects.filter(state=AuthoringSession.State.PUBLISHED)
    authored = set(published.values_list("published_version_id", flat=True))
    superseded = set(published.values_list("source_version_id", flat=True)) & authored
    candidates = superseded - _versions_in_use(superseded)
    if not candidates:
        return 0
    retired = 0
    with transaction.atomic():
        for version in locks.ready_versions_lock(candidates):
            if version_in_use(version):  # a desktop came meanwhile: checked again under the lock
                continue
            version.status = ImageVersion.Status.RETIRED
            version.save(update_fields=["status"])
            event_record(
                action=Action.IMAGE_VERSION_RETIRED,
                target=version,
                tenant=_version_tenant(version),
                detail={"volume": version.volume, "pool": version.pool},
            )
            if version.volume:
                enqueue(task_names.IMAGE_VERSION_VOLUME_DELETE, version.pk, queue=version.endpoint.site.celery_queue)
            retired += 1
    return retired


def version_volume_deleted(*, version_id: int, error: str = "", kept: str = "") -> None:
    """What the volume deletion task found: deleted, kept (still a backing file), or failed."""
    with transaction.atomic():
        version = ImageVersion.objects.select_related("image").get(pk=version_id)
        if error:
            ImageVersion.objects.filter(pk=version_id).update(last_error=error[:2000])
        event_record(
            action=Action.IMAGE_VOLUME_DELETED,
            target=version,
            tenant=_version_tenant(version),
            result="failure" if error or kept else "success",
            reason=(error or kept)[:500],
            detail={
                "step": "image_volume_deleted" if not (error or kept) else "image_volume_kept",
                "volume": version.volume,
                "pool": version.pool,
            },
        )


def console_ws_path(token: str) -> str:
    return f"{getattr(settings, 'CONSOLE_WS_PREFIX', '/ws/console/')}{token}/"

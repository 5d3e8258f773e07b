"""The class schedule at work (Celery beat, every minute): pools powered on before each class and
wound down after it (stopped, reset for a reset-after-class pool), each step once per class as the
``ClassSession`` rows record; and the classes teachers skip (holidays, one class)."""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import Action
from audit.services import event_record
from common import limits
from common.errors import InvalidInput
from compute import locks as compute_locks
from compute import services as compute_services
from compute.classroom import locks
from compute.classroom.errors import ErrorCode
from compute.classroom.models import ClassSession, DesktopPool, ScheduleException, Seat
from compute.classroom.services.access import require_manage
from compute.classroom.services.authoring import versions_retire_unused
from compute.classroom.services.console import connected_desktop_ids
from compute.classroom.services.fulfilment import seat_flavor_restart
from compute.classroom.services.power import active_desktop_ids
from compute.classroom.services.schedule import classes_between, shutdown_deadline
from compute.classroom.services.seats import seat_retire
from compute.models import Desktop
from tenants.models import ClassTime

if TYPE_CHECKING:
    from tenants.models import User

log = logging.getLogger(__name__)


def _seat_name(seat: Seat) -> str:
    """A seat as the teacher's warnings name it: its student's username, or "spare seat"."""
    return seat.student.username if seat.student else seat.holder_name


def _parse_class_time(pool: DesktopPool, class_time_id: int | str | None) -> ClassTime | None:
    if class_time_id in (None, ""):
        return None
    class_time = ClassTime.objects.filter(pk=class_time_id, course=pool.course).first()
    if class_time is None:
        raise InvalidInput(_("未知课次。"), code=ErrorCode.CLASS_TIME_NOT_FOUND)
    return class_time


def schedule_exception_add(
    *,
    actor: User | None,
    pool: DesktopPool,
    date: datetime.date,
    class_time_id: int | str | None = None,
    reason: str = "",
) -> ScheduleException:
    """Skip one class (``class_time_id``) or a whole day (a holiday): the schedule leaves it alone."""
    require_manage(actor, pool)
    limits.check_year(date, field="date")
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


def schedule_exception_remove(*, actor: User | None, exception: ScheduleException) -> None:
    require_manage(actor, exception.pool)
    with transaction.atomic():
        event_record(
            action=Action.CLASS_SKIPPED,
            actor=actor,
            target=exception.pool,
            tenant=exception.pool.tenant,
            detail={"date": str(exception.date), "removed": True},
        )
        exception.delete()


def _session_for(
    pool: DesktopPool, class_time: ClassTime, day: datetime.date, begins: datetime.datetime, ends: datetime.datetime
) -> ClassSession:
    session, _created = ClassSession.objects.get_or_create(
        pool=pool, class_time=class_time, date=day, defaults={"starts_at": begins, "ends_at": ends}
    )
    return session


def _power_on_for_class(pool: DesktopPool, session: ClassSession, now: datetime.datetime) -> int:
    with transaction.atomic():
        session = locks.class_session_lock(session.pk)
        if session.powered_on_at is not None:
            return 0
        # A seat whose stopped desktop still has the pool's previous flavor takes the new one first
        # (a change applied "at the next class"), then is started.
        resize = dict(
            pool.seats.filter(state=Seat.State.ACTIVE, desktop__state=Desktop.State.STOPPED)
            .exclude(desktop__flavor_id=pool.flavor_id)
            .values_list("pk", "desktop_id")
        )
        seat_flavor_restart(pool=pool, seat_ids=list(resize))
        started = compute_services.desktops_power(
            actor=None, desktops=active_desktop_ids(pool, exclude=resize.values()), verb="start"
        )
        changed = len(started) + len(resize)
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


def _wind_down_seats(
    pool: DesktopPool, session: ClassSession, seats: list[Seat], *, connected: set[int], forced: bool
) -> dict:
    """The seats' desktops after class, locked: running ones nobody is on (or all, once ``forced``) are
    stopped; stopped ones of a reset-after-class pool are reset once for this class. The report counts
    them, the desktops still connected, those powered off under a student (``forced_names``) and those
    the next tick must come back for (``waiting``)."""
    report = {"stopped": 0, "connected": 0, "forced": 0, "reset": 0, "waiting": 0, "forced_names": []}
    desktops = {d.pk: d for d in compute_locks.desktops_lock(s.desktop_id for s in seats)}
    to_stop, to_reset = [], {}
    for seat in seats:
        desktop = desktops[seat.desktop_id]
        if desktop.pk in connected and not forced:
            report["connected"] += 1
        elif desktop.state == Desktop.State.RUNNING:
            to_stop.append(desktop.pk)
        elif desktop.state == Desktop.State.STOPPED and pool.persistence == DesktopPool.Persistence.RESET:
            if seat.reset_for_id != session.pk:
                to_reset[desktop.pk] = seat
        elif desktop.state in Desktop.TRANSIENT:
            report["waiting"] += 1
    stopped = compute_services.desktops_power(actor=None, desktops=to_stop, verb="stop")
    reset = compute_services.desktops_reset(actor=None, desktops=list(to_reset), image_version=pool.image_version)
    for desktop in reset:
        seat = to_reset[desktop.pk]
        seat.reset_for = session
        seat.save(update_fields=["reset_for"])
    names = {s.desktop_id: _seat_name(s) for s in seats}
    report["forced_names"] = [names[d.pk] for d in stopped if d.pk in connected]
    report["forced"] = len(report["forced_names"])
    report["stopped"] = len(stopped)
    report["reset"] = len(reset)
    report["waiting"] += len(to_stop) + len(reset)
    return report


def _shutdown_warning(
    pool: DesktopPool,
    session: ClassSession,
    report: dict,
    *,
    connected_names: list[str],
    forced_names: list[str],
    deadline: datetime.datetime,
    now: datetime.datetime,
) -> None:
    """What the session tells the teacher: the desktops powered off although in use, or the students
    whose desktops are still on, and until when."""
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
        session.warnings += 1
        session.last_warning = (
            ngettext(
                "%(n)s 名学生仍在使用桌面，关机推迟，最迟 %(deadline)s 强制关机：%(names)s",
                "%(n)s 名学生仍在使用桌面，关机推迟，最迟 %(deadline)s 强制关机：%(names)s",
                len(connected_names),
            )
            % {
                "n": len(connected_names),
                "deadline": timezone.localtime(deadline).strftime("%H:%M"),
                "names": ", ".join(connected_names),
            }
        )[:500]
        log.warning("pool %s: %s", pool.pk, session.last_warning)


def _wind_down(pool: DesktopPool, session: ClassSession, now: datetime.datetime) -> dict:
    """After class: stop desktops nobody is using (warn about the others and come back next tick),
    then, for a reset-after-class pool, reset each stopped seat once; done when all of that is.

    A connected student puts the shutdown off only until the pool's deadline: after it the
    desktop is powered off anyway (the student was warned on every tick before)."""
    with transaction.atomic():
        session = locks.class_session_lock(session.pk)
        if session.state == ClassSession.State.DONE:
            return {"stopped": 0, "connected": 0, "forced": 0, "reset": 0, "waiting": 0}
        deadline = shutdown_deadline(pool, session)
        seats = list(pool.seats.filter(state=Seat.State.ACTIVE, desktop__isnull=False).select_related("student"))
        connected = connected_desktop_ids([s.desktop_id for s in seats], now)
        report = _wind_down_seats(pool, session, seats, connected=connected, forced=now >= deadline)
        _shutdown_warning(
            pool,
            session,
            report,
            connected_names=[_seat_name(s) for s in seats if s.desktop_id in connected],
            forced_names=report.pop("forced_names"),
            deadline=deadline,
            now=now,
        )
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
            seat_retire(seat, creator=pool.course.teacher)

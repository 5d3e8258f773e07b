"""The class schedule's time arithmetic and reads: the pool's offsets checked, which classes fall in a
window, the class going on and the next one, when a class's desktops are powered off at the latest,
and the warning a student still on a desktop sees. Nothing here writes: the pages, the selectors and
the scheduler read it."""

import datetime

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from common.errors import InvalidInput
from compute.classroom.errors import ErrorCode
from compute.classroom.models import ClassSession, DesktopPool, ScheduleException, Seat
from compute.models import Desktop
from tenants.models import ClassTime

# Minutes after a class at which its desktops are powered off even with a student connected,
# unless the pool says otherwise (never before its own shutdown delay).
DEFAULT_SHUTDOWN_DEADLINE = 30
MAX_SCHEDULE_MINUTES = 240
MAX_DEADLINE_MINUTES = 480

# One class of a pool: its class time, the date, when it starts and ends.
ClassSlot = tuple[ClassTime, datetime.date, datetime.datetime, datetime.datetime]


def schedule_minutes(
    *,
    lead_minutes: int | str,
    shutdown_after_minutes: int | str,
    shutdown_deadline_minutes: int | str | None = None,
) -> dict[str, int]:
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


def _local(value: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(value)


def _occurrence(class_time: ClassTime, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    tz = timezone.get_current_timezone()
    start = datetime.datetime.combine(day, class_time.start_time, tzinfo=tz)
    end = datetime.datetime.combine(day, class_time.end_time, tzinfo=tz)
    return start, end


def _excepted(
    pool: DesktopPool, day: datetime.date, class_time: ClassTime, exceptions: list[ScheduleException]
) -> bool:
    return any(e.date == day and (e.class_time_id is None or e.class_time_id == class_time.pk) for e in exceptions)


def classes_between(
    pool: DesktopPool,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    exceptions: list[ScheduleException] | None = None,
) -> list[ClassSlot]:
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


def class_in_progress(pool: DesktopPool, now: datetime.datetime | None = None) -> ClassSlot | None:
    """(class time, date, starts, ends) of the class going on now, or None."""
    now = now or timezone.now()
    current = classes_between(pool, now, now + datetime.timedelta(seconds=1))
    return current[0] if current else None


def desktops_on_now(pool: DesktopPool, now: datetime.datetime | None = None) -> bool:
    """Whether the schedule has the pool's desktops on now: from ``lead_minutes`` before a class until
    ``shutdown_after_minutes`` after it. A desktop made outside that is made stopped."""
    now = now or timezone.now()
    lead = datetime.timedelta(minutes=pool.lead_minutes)
    after = datetime.timedelta(minutes=pool.shutdown_after_minutes)
    return any(
        begins - lead <= now < ends + after
        for _class_time, _day, begins, ends in classes_between(
            pool, now - after, now + lead + datetime.timedelta(seconds=1)
        )
    )


def next_class(pool: DesktopPool, now: datetime.datetime | None = None) -> ClassSlot | None:
    now = now or timezone.now()
    upcoming = classes_between(pool, now, now + datetime.timedelta(days=15))
    return next((item for item in upcoming if item[2] >= now), None)


def shutdown_deadline(pool: DesktopPool, session: ClassSession) -> datetime.datetime:
    """When the class's desktops are powered off even if a student is still connected."""
    minutes = max(pool.shutdown_deadline_minutes, pool.shutdown_after_minutes)
    return session.ends_at + datetime.timedelta(minutes=minutes)


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

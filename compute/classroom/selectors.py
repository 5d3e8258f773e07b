"""Reads of the classroom, scoped to the acting user; each fails closed."""

from dataclasses import dataclass, field

from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from compute.classroom.models import AuthoringSession, DesktopPool, Seat
from compute.classroom.services import schedule
from compute.models import Desktop, Endpoint
from compute.selectors import desktop_list_for
from tenants.selectors import course_list_for


def _active_seats(**desktop_filter) -> Coalesce:
    """How many active seats of the pool (whose desktop matches ``desktop_filter``): a subquery per
    row of the page. As a JOIN with GROUP BY it made every page (and its count) join and group all
    seats of all visible pools: ~1,700 pools and 100,000 seats at campus scale."""
    seats = (
        Seat.objects.filter(pool=OuterRef("pk"), state=Seat.State.ACTIVE, **desktop_filter)
        .order_by()
        .values("pool")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(seats, output_field=IntegerField()), 0)


def pool_list_for(user, *, search: str = "", counts: bool = True) -> QuerySet[DesktopPool]:
    """Pools of the courses the user may see; students see no pool (only their own desktops).

    ``counts``: each pool's seat, ready and failed counts (``seat_count``…), which the pool list and
    the API show; a page of one pool counts its seats from the seats it reads, and building the three
    subqueries cost it more than its other queries."""
    if not getattr(user, "is_authenticated", False):
        return DesktopPool.objects.none()
    # A student on a roster sees the course, not its pool: theirs is only their own desktop.
    courses = course_list_for(user).exclude(roster__user=user)
    queryset = DesktopPool.objects.filter(course__in=courses.values("pk")).select_related(
        "course__teacher", "tenant", "image_version__image", "flavor__gpu_profile"
    )
    if counts:
        queryset = queryset.annotate(
            seat_count=_active_seats(),
            ready_count=_active_seats(desktop__state__in=[Desktop.State.RUNNING, Desktop.State.STOPPED]),
            failed_count=_active_seats(desktop__state=Desktop.State.ERROR),
        )
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(course__code__icontains=search))
    return queryset.order_by("-created_at", "-id")


def pool_get_for(user, *, pk) -> DesktopPool:
    return pool_list_for(user).get(pk=pk)


def seat_list_for(user, *, pool: DesktopPool) -> QuerySet[Seat]:
    """Seats of a pool the user may see (the pool came from pool_get_for)."""
    return (
        pool.seats.filter(state__in=[Seat.State.ACTIVE, Seat.State.RETIRING])
        # What a seat's card and the API's row read: the holder, the desktop and its flavor's name.
        .select_related("student", "desktop__flavor")
        # Students in roster order, the spare seats after them.
        .order_by(F("student").asc(nulls_last=True), "student__student_number", "student__username", "id")
    )


def seat_get_for(user, *, pk) -> Seat:
    pools = pool_list_for(user).values("pk")
    return Seat.objects.select_related("pool__course", "pool__tenant", "pool__image_version", "desktop", "student").get(
        pk=pk, pool__in=pools
    )


@dataclass
class Progress:
    total: int
    ready: int
    failed: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    @property
    def percent(self) -> int:
        return int(self.ready * 100 / self.total) if self.total else 0

    @property
    def done(self) -> bool:
        return self.total > 0 and self.ready + len(self.failed) >= self.total


def pool_progress(seats) -> Progress:
    seats = list(seats)
    counts: dict[str, int] = {}
    for seat in seats:
        state = seat.desktop.state if seat.desktop else "none"
        counts[state] = counts.get(state, 0) + 1
    ready = sum(1 for s in seats if s.desktop and s.desktop.state in Desktop.LIVE)
    failed = [s for s in seats if (s.desktop and s.desktop.state == Desktop.State.ERROR) or (not s.desktop and s.error)]
    return Progress(total=len(seats), ready=ready, failed=failed, counts=counts)


@dataclass
class CourseDesktops:
    course: object
    pool: DesktopPool | None
    desktops: list
    next_class: tuple | None


def my_desktops(user) -> list[CourseDesktops]:
    """The user's own desktops grouped by course (desktops without a course last), with the next class."""
    desktops = list(
        desktop_list_for(user)
        .filter(owner=user)
        .select_related("course", "flavor__gpu_profile", "image_version__image", "endpoint")
        .order_by("course__code", "name")
    )
    pools = {
        p.course_id: p
        for p in DesktopPool.objects.filter(
            course_id__in={d.course_id for d in desktops if d.course_id}, state=DesktopPool.State.ACTIVE
        ).select_related("course")
    }
    groups: dict = {}
    now = timezone.now()
    for desktop in desktops:
        # Set on the instance for the page: when the schedule will power it off although in use.
        desktop.shutdown_at = schedule.shutdown_notice(desktop, now) if desktop.course_id else None
        groups.setdefault(desktop.course_id, []).append(desktop)
    result = []
    for course_id, items in sorted(groups.items(), key=lambda kv: (kv[0] is None, items_code(kv[1]))):
        pool = pools.get(course_id)
        result.append(
            CourseDesktops(
                course=items[0].course,
                pool=pool,
                desktops=items,
                next_class=schedule.next_class(pool) if pool else None,
            )
        )
    return result


def items_code(desktops) -> str:
    return desktops[0].course.code if desktops and desktops[0].course_id else ""


def authoring_list_for(user, *, pool: DesktopPool) -> QuerySet[AuthoringSession]:
    return (
        AuthoringSession.objects.filter(course=pool.course)
        .select_related("desktop", "source_version__image", "published_version")
        .order_by("-created_at")
    )


def console_unavailable(desktop) -> str:
    """Why the portal's web console cannot show this desktop ("" when it can): vCenter speaks
    WebMKS, not VNC, and libvirt's test driver has no display at all."""
    endpoint = desktop.endpoint
    if endpoint is None:
        return ""
    if endpoint.kind == Endpoint.Kind.VCENTER:
        return _("该桌面所在的 vCenter 不提供网页控制台，请使用 vSphere 客户端连接。")
    if endpoint.url.startswith("test:"):
        return _("该虚拟化平台（测试驱动）没有显示输出，不提供网页控制台。")
    return ""

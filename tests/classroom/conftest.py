"""Fixtures of the classroom tests: a course with a roster and class times, an endpoint on
libvirt's test driver, eager tasks. The real libvirtd's pool and the ASGI portal are
tests/harness/'s (shared with the browser tests)."""

import datetime

import pytest

from compute.hypervisor import drivers_close_all
from tenants.models import ClassTime, Course, RosterEntry
from tests import factories

TERM_START = datetime.date(2026, 9, 1)
TERM_END = datetime.date(2027, 1, 15)
# A Monday in the term, and the Monday class of the course fixture: 10:00-11:40 (Asia/Shanghai).
MONDAY = datetime.date(2026, 11, 30)
CLASS_START = datetime.time(10, 0)
CLASS_END = datetime.time(11, 40)


@pytest.fixture(autouse=True)
def _fresh_drivers():
    drivers_close_all()
    yield
    drivers_close_all()


@pytest.fixture(autouse=True)
def _pool_fulfiller():
    """The app registers it at start-up; another app's test may have unregistered it since."""
    from compute.classroom.services import fulfil_course_desktops
    from tenants.hooks import register_fulfiller
    from tenants.models import RequestKind

    register_fulfiller(RequestKind.COURSE_DESKTOPS, fulfil_course_desktops)
    register_fulfiller(RequestKind.GPU_ENVIRONMENT, fulfil_course_desktops)


def make_course(scenario, *, students: int = 2, code: str = "CS101") -> Course:
    """A course of the scenario's teacher: student, student2, then extra students up to ``students``."""
    course = Course.objects.create(
        tenant=scenario.tenant_a,
        code=code,
        name="计算机导论",
        teacher=scenario.teacher,
        term_start=TERM_START,
        term_end=TERM_END,
    )
    people = [scenario.student, scenario.student2]
    for n in range(3, students + 1):
        people.append(factories.member(f"a_stu{n:02d}", scenario.tenant_a, "student"))
    for n, user in enumerate(people[:students], start=1):
        RosterEntry.objects.create(course=course, user=user, student_number=f"2026{n:04d}")
    ClassTime.objects.create(course=course, weekday=1, start_time=CLASS_START, end_time=CLASS_END)
    return course


@pytest.fixture
def course(scenario) -> Course:
    return make_course(scenario)


@pytest.fixture
def env(scenario):
    from tests.compute.conftest import make_env

    return make_env(scenario)


def at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    """An aware datetime in the portal's time zone (Asia/Shanghai)."""
    from django.utils import timezone

    return datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.get_current_timezone())

"""Fixtures of the tenants tests: a CS101 course of the scenario's teacher, quotas."""

import datetime

import pytest

from tenants.models import ClassTime, Course, RosterEntry
from tests import factories


@pytest.fixture
def course(scenario) -> Course:
    course = factories.cs101(scenario)
    RosterEntry.objects.create(course=course, user=scenario.student, student_number="20260001")
    RosterEntry.objects.create(course=course, user=scenario.student2, student_number="20260002")
    ClassTime.objects.create(course=course, weekday=1, start_time=datetime.time(8), end_time=datetime.time(10))
    return course


@pytest.fixture
def stranger_course(scenario) -> Course:
    return Course.objects.create(
        tenant=scenario.tenant_b,
        code="ME201",
        name="机械设计",
        teacher=scenario.stranger,
        term_start=datetime.date(2026, 9, 1),
        term_end=datetime.date(2027, 1, 15),
    )

"""The Course model's database rules: unique code per tenant, ordered terms and class times."""

import datetime

import pytest
from django.db import IntegrityError, transaction

from tenants.models import ClassTime, Course, RosterEntry


def _course(scenario, code="CS101", **kw):
    values = {
        "tenant": scenario.tenant_a,
        "code": code,
        "name": "计算机导论",
        "teacher": scenario.teacher,
        "term_start": datetime.date(2026, 9, 1),
        "term_end": datetime.date(2027, 1, 15),
    }
    values.update(kw)
    return Course.objects.create(**values)


def test_course_code_is_unique_per_tenant_only(scenario):
    _course(scenario)
    _course(scenario, tenant=scenario.tenant_b, teacher=scenario.stranger)
    with pytest.raises(IntegrityError), transaction.atomic():
        _course(scenario)


def test_course_term_must_not_end_before_it_starts(scenario):
    with pytest.raises(IntegrityError), transaction.atomic():
        _course(scenario, term_start=datetime.date(2026, 9, 1), term_end=datetime.date(2026, 8, 1))


def test_roster_refuses_the_same_student_twice(scenario):
    course = _course(scenario)
    RosterEntry.objects.create(course=course, user=scenario.student, student_number="20260001")
    assert list(course.students.all()) == [scenario.student]
    with pytest.raises(IntegrityError), transaction.atomic():
        RosterEntry.objects.create(course=course, user=scenario.student, student_number="20260002")


def test_class_time_must_end_after_it_starts(scenario):
    course = _course(scenario)
    with pytest.raises(IntegrityError), transaction.atomic():
        ClassTime.objects.create(
            course=course, weekday=1, start_time=datetime.time(10, 0), end_time=datetime.time(9, 0)
        )


def test_class_times_overlap_only_on_the_same_weekday():
    monday_8 = ClassTime(weekday=1, start_time=datetime.time(8), end_time=datetime.time(10))
    monday_9 = ClassTime(weekday=1, start_time=datetime.time(9), end_time=datetime.time(11))
    monday_10 = ClassTime(weekday=1, start_time=datetime.time(10), end_time=datetime.time(12))
    tuesday_9 = ClassTime(weekday=2, start_time=datetime.time(9), end_time=datetime.time(11))
    assert monday_8.overlaps(monday_9)
    assert not monday_8.overlaps(monday_10)
    assert not monday_8.overlaps(tuesday_9)

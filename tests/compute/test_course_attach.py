"""Issue #14.7: a desktop is charged to a course only for someone on that course's roster.

The attack: a student names a course they are not enrolled on (another class of their college)
when creating a desktop, so its cost and quota land on that course.
"""

import datetime

import pytest

from compute.errors import ComputeError
from compute.models import Desktop
from tenants.models import Course, RosterEntry


@pytest.fixture
def course(scenario):
    return Course.objects.create(
        tenant=scenario.tenant_a,
        code="CS201",
        name="操作系统",
        teacher=scenario.teacher,
        term_start=datetime.date(2026, 9, 1),
        term_end=datetime.date(2027, 1, 15),
    )


def _create(api, user, compute_env, course, **extra):
    payload = {"image_version": compute_env.version.pk, "flavor": compute_env.flavor.pk, "course": course.pk, **extra}
    return api.as_user(user).post("/api/v1/desktops/", payload, format="json")


def test_a_student_cannot_charge_a_desktop_to_a_course_they_are_not_enrolled_on(scenario, compute_env, api, course):
    response = _create(api, scenario.student, compute_env, course)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == ComputeError.COURSE_NOT_ENROLLED
    assert response.json()["detail"] == {"field": "course"}
    assert not Desktop.objects.filter(course=course).exists()


def test_an_enrolled_student_charges_their_desktop_to_their_course(scenario, compute_env, api, course):
    RosterEntry.objects.create(course=course, user=scenario.student, student_number="2026001")

    response = _create(api, scenario.student, compute_env, course)

    assert response.status_code == 202, response.content
    assert Desktop.objects.get(pk=response.json()["id"]).course == course


def test_the_teacher_cannot_charge_a_desktop_of_a_student_off_the_roster_to_the_course(
    scenario, compute_env, api, course
):
    RosterEntry.objects.create(course=course, user=scenario.student, student_number="2026001")

    refused = _create(api, scenario.teacher, compute_env, course, owner=scenario.student2.username)
    allowed = _create(api, scenario.teacher, compute_env, course, owner=scenario.student.username)

    assert refused.status_code == 400 and refused.json()["code"] == ComputeError.COURSE_NOT_ENROLLED
    assert allowed.status_code == 202, allowed.content


def test_the_teacher_may_charge_their_own_authoring_desktop_to_the_course(scenario, compute_env, api, course):
    response = _create(api, scenario.teacher, compute_env, course)

    assert response.status_code == 202, response.content

"""Fixtures of the sign-in tests: CS101 with a roster made by the roster import (accounts without passwords)."""

import datetime

import pytest

from tenants import services
from tenants.models import Course


@pytest.fixture
def roster(scenario) -> Course:
    """CS101 of tenant cs with 20260001..20260004 on its roster, as a teacher's import makes them."""
    course = Course.objects.create(
        tenant=scenario.tenant_a,
        code="CS101",
        name="计算机导论",
        teacher=scenario.teacher,
        term_start=datetime.date(2026, 9, 1),
        term_end=datetime.date(2027, 1, 15),
    )
    rows = [(1, "20260001", "王小明"), (2, "20260002", "李小红"), (3, "20260003", "赵小刚"), (4, "20260004", "钱小军")]
    services.course_roster_import(actor=None, course=course, rows=rows)
    return course

"""Fixtures of the sign-in tests: CS101 with a roster made by the roster import (accounts without passwords)."""

import pytest

from tenants import services
from tenants.models import Course
from tests import factories


@pytest.fixture
def roster(scenario) -> Course:
    """CS101 of tenant cs with 20260001..20260004 on its roster, as a teacher's import makes them."""
    course = factories.cs101(scenario)
    rows = [(1, "20260001", "王小明"), (2, "20260002", "李小红"), (3, "20260003", "赵小刚"), (4, "20260004", "钱小军")]
    services.course_roster_import(actor=None, course=course, rows=rows)
    return course

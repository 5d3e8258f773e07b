"""Every operation of /api/schema/, fed generated input (valid and not), on the demo as shipped
(``seed_demo``), as the demo's tenant admin, a teacher and a student: never a 500, never off-schema.

Its twin, test_robustness_populated.py, walks again after one object of every kind was made through
the API. The machinery is tests/api/walk.py. The schema grows as apps add routes; so do these tests,
with nothing to register.
"""

import pytest

from tests.api.walk import ROLES, walk_all

pytestmark = pytest.mark.fuzz  # make test runs the walk; make test-fast leaves it (README)


@pytest.mark.parametrize("role", list(ROLES))
def test_no_operation_answers_500_or_off_schema_on_the_demo(demo, role):
    walk_all(role, "the demo")

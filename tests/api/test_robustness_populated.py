"""The walk of test_robustness.py again, after one object of every kind was made through the API: a
second course with its roster and pool (its request approved), a network, a volume, a snapshot, a
price plan, a budget and an open request; so operations on objects the demo lacks are fuzzed too.
"""

import pytest

from tests.api.walk import ROLES, populate, walk_all

pytestmark = pytest.mark.fuzz  # make test runs the walk; make test-fast leaves it (README)


@pytest.mark.parametrize("role", list(ROLES))
def test_no_operation_answers_500_or_off_schema_with_one_object_of_each_kind(
    demo, django_capture_on_commit_callbacks, role
):
    world = populate(demo, django_capture_on_commit_callbacks)
    assert set(world.made) >= {"course", "pool", "network", "volume", "snapshot", "price_plan", "budget", "request"}
    walk_all(role, "the demo with one object of each kind")

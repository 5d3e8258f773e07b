"""The classroom starts Celery tasks by name (compute.classroom.task_names): each name must be a task."""

import pytest

from common.tasks import task_named
from compute.classroom import task_names

NAMES = sorted(value for key, value in vars(task_names).items() if key.isupper())


@pytest.mark.parametrize("name", NAMES)
def test_every_task_the_classroom_starts_is_registered_under_its_name(name):
    assert task_named(name).name == name

"""Fixtures of the API walk (tests/api/walk.py): the demo as shipped, and the test's connection kept."""

import pytest
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from compute.hypervisor import drivers_close_all
from tests.api.walk import World, keep_connection


@pytest.fixture
def _keep_the_test_connection():
    keep_connection()
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def demo(db, eager, django_capture_on_commit_callbacks, _keep_the_test_connection) -> World:
    """The demo as `seed_demo` ships it, its queued work done (libvirt's test driver)."""
    drivers_close_all()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", verbosity=0)
    yield World()
    drivers_close_all()  # the next test's test driver starts empty

"""Fixtures every test may use: the shared scenario, API clients, eager Celery; the harness plugins.

The real components (Celery worker, uvicorn, Chromium, libvirtd, vcsim) are tests/harness/'s,
loaded below as plugins so that each session-scoped fixture exists once per test process.
"""

import os

import pytest
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from tests import factories
from tests.scenario import Scenario, scenario_build, scenario_load

pytest_plugins = [
    "pytester",
    "tests.harness.markers",
    "tests.harness.worker",
    "tests.harness.asgi",
    "tests.harness.browser",
    "tests.harness.qemu",
    "tests.harness.hostnet",
    "tests.harness.vcsim",
    "tests.harness.testbed",
    "tests.harness.guest",
    "tests.sso.harness",
]

# CI (CI=true make test) explores the same examples on every run, so main does not turn red on a
# draw; on a developer's machine hypothesis keeps drawing new ones and prints how to replay a failure.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _broker_per_xdist_worker():
    """Under pytest-xdist, each test process gets its own Redis database as broker.

    Real Celery workers started by one process must never take tasks sent by another
    (whose rows live in another test database).
    """
    from django.conf import settings as django_settings

    from portal.celery import app

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("CELERY_BROKER_URL", "")
    if worker.startswith("gw") and url.startswith("redis://"):
        base, _, number = url.rpartition("/")
        url = f"{base}/{(int(number or 0) - 1 - int(worker[2:])) % 16}"
        os.environ["CELERY_BROKER_URL"] = url
        django_settings.CELERY_BROKER_URL = url
        app.conf.broker_url = url
    yield


@pytest.fixture(scope="session", autouse=True)
def _static_files_listed_once():
    """WhiteNoise lists and stats every static file (node_modules: ~3,000) each time its middleware
    starts, which is once per test client: 0.7 s for every test that makes a request. The files do
    not change during a run, so the list is made once per process (and per static settings) and
    each middleware gets a copy."""
    from whitenoise.middleware import WhiteNoiseMiddleware

    original = WhiteNoiseMiddleware.add_files_from_finders
    listed: dict[tuple, dict] = {}

    def add_files_from_finders(self):
        from django.conf import settings

        names = sorted(n for n in dir(settings) if n.startswith(("WHITENOISE_", "STATIC")) or n == "DEBUG")
        key = tuple((name, repr(getattr(settings, name))) for name in names)
        if key not in listed:
            original(self)
            listed[key] = dict(self.files)
        self.files.update(listed[key])

    WhiteNoiseMiddleware.add_files_from_finders = add_files_from_finders
    yield
    WhiteNoiseMiddleware.add_files_from_finders = original


@pytest.fixture
def eager():
    """Celery tasks run in-process, at once, their errors raised (the layer above the worker); a task's
    retry runs again after its countdown, as on a worker (tests/harness/eager.py)."""
    from portal.celery import app
    from tests.harness import eager as eager_retries

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    eager_retries.install()
    yield app
    eager_retries.uninstall()
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test starts with an empty cache (the process's own, locmem): a total or a chart kept by an
    earlier test for the same query (common.paging.query_key) is not this test's."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Tests log in hundreds of times; PBKDF2 at production strength would dominate the run.
    settings.PASSWORD_HASHERS = FAST_HASHERS


def _scenario_commit() -> None:
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=FAST_HASHERS):
        factories._PASSWORD_HASH = None
        scenario_build()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb, django_db_createdb):
    """The test database with the scenario committed in it, once per test process.

    A reused database (``--reuse-db``, ``make test-fast``) is emptied first: a run killed halfway
    leaves what its transactional test had committed. A transactional test ends with Django
    emptying the database (TransactionTestCase's flush); the scenario is built again right after.
    """
    from django.core.management import call_command
    from django.test import TransactionTestCase

    with django_db_blocker.unblock():
        if django_db_keepdb and not django_db_createdb:
            call_command("flush", interactive=False, verbosity=0)
        _scenario_commit()

    flush = TransactionTestCase._fixture_teardown

    def flush_then_scenario(self):
        flush(self)
        _scenario_commit()

    TransactionTestCase._fixture_teardown = flush_then_scenario
    yield
    TransactionTestCase._fixture_teardown = flush


@pytest.fixture
def scenario(db) -> Scenario:
    factories._PASSWORD_HASH = None
    return scenario_load()


@pytest.fixture
def api():
    """An API client; `api.as_user(user)` authenticates it as that user."""

    class Client(APIClient):
        def as_user(self, user):
            self.force_authenticate(user=user)
            return self

    return Client()

"""Fixtures every test may use: the shared scenario and API clients.

The scenario (STYLE.md): tenant A (`cs`, under a university) with a tenant admin, a
teacher, two students, finance and an auditor; tenant B (`me`) with a stranger; and the
three platform admins.
"""

import os
from dataclasses import dataclass

import pytest
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from tests import factories

pytest_plugins = ["tests.browser_harness", "tests.classroom_harness", "tests.sso.harness"]

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
    import os

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


@pytest.fixture
def eager():
    """Celery tasks run in-process, at once, their errors raised (the layer above the worker)."""
    from portal.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Tests log in hundreds of times; PBKDF2 at production strength would dominate the run.
    settings.PASSWORD_HASHERS = FAST_HASHERS


@dataclass
class Scenario:
    university: object
    tenant_a: object
    tenant_b: object
    tenant_admin: object
    teacher: object
    student: object
    student2: object
    finance: object
    auditor: object
    stranger: object
    stranger_admin: object
    sysadmin: object
    secadmin: object
    auditadmin: object


@pytest.fixture
def scenario(db, settings) -> Scenario:
    settings.PASSWORD_HASHERS = FAST_HASHERS
    factories._PASSWORD_HASH = None
    uni = factories.TenantFactory(slug="uni", name_zh="示范大学", kind="university")
    a = factories.TenantFactory(slug="cs", name_zh="计算机学院", name_en="Computer Science", parent=uni)
    b = factories.TenantFactory(slug="me", name_zh="机械学院", name_en="Mechanical Engineering", parent=uni)
    return Scenario(
        university=uni,
        tenant_a=a,
        tenant_b=b,
        tenant_admin=factories.member("a_admin", a, "tenant_admin"),
        teacher=factories.member("a_teacher", a, "teacher"),
        student=factories.member("a_student", a, "student"),
        student2=factories.member("a_student2", a, "student"),
        finance=factories.member("a_finance", a, "finance"),
        auditor=factories.member("a_auditor", a, "auditor"),
        stranger=factories.member("b_teacher", b, "teacher"),
        stranger_admin=factories.member("b_admin", b, "tenant_admin"),
        sysadmin=factories.platform_admin("p_sysadmin", "system_admin"),
        secadmin=factories.platform_admin("p_secadmin", "security_admin"),
        auditadmin=factories.platform_admin("p_auditadmin", "audit_admin"),
    )


@pytest.fixture
def api():
    """An API client; `api.as_user(user)` authenticates it as that user."""

    class Client(APIClient):
        def as_user(self, user):
            self.force_authenticate(user=user)
            return self

    return Client()


def _worker_database_url() -> str:
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("a real Celery worker shares the test database: run the suite on MariaDB (make test)")
    auth = quote(db["USER"] or "root") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"mysql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker process on the configured broker, using the test database.

    Yields the process; waits until its heartbeat row shows it consuming. Tests that use
    it see committed data only, hence `transactional_db`.
    """
    import os
    import subprocess
    import sys
    import time
    import uuid
    from pathlib import Path

    from portal.celery import app
    from portal.models import WorkerHeartbeat

    app.control.purge()
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    env = {**os.environ, "DATABASE_URL": _worker_database_url()}
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            "default,hypervisor,billing,audit",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "WARNING",
            "-n",
            name,
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=root,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not WorkerHeartbeat.objects.filter(hostname__startswith=name.split("@")[0]).exists():
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the Celery worker did not report within 60 s")
        time.sleep(0.2)
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

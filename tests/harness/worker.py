"""A real Celery worker process on the configured broker (Redis under ``make test``), sharing the test
database: ``celery_worker`` for a test, ``start_worker`` / ``stop_worker`` for a test that kills one."""

import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.harness.processes import ROOT, stop_process, worker_database_url

QUEUES = "default,hypervisor,billing,audit"


def start_worker(*, visibility_timeout: int | None = None, name: str = "") -> subprocess.Popen:
    """Start a worker on every queue; returns once its heartbeat row appears.

    ``visibility_timeout`` (seconds) runs it with tests/harness/celery_app.py: a message whose worker
    died is delivered again that soon instead of after Redis's hour.
    """
    from portal.models import WorkerHeartbeat

    name = name or f"cc-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": worker_database_url()}
    app = "portal"
    if visibility_timeout is not None:
        env["CC_TEST_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
        app = "tests.harness.celery_app"
    command = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", QUEUES, "--pool", "threads", "-c", "4"]
    command += ["--loglevel", "WARNING", "-n", f"{name}@%h", "--without-mingle", "--without-gossip"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while not WorkerHeartbeat.objects.filter(hostname__startswith=name).exists():
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the Celery worker did not report within 60 s")
        time.sleep(0.2)
    return process


def stop_worker(process: subprocess.Popen) -> None:
    stop_process(process, timeout=20)


@pytest.fixture
def celery_worker(transactional_db):
    """A real worker for this test, on an emptied broker. Yields the process.

    It sees committed data only, hence ``transactional_db``.
    """
    from portal.celery import app

    app.control.purge()
    process = start_worker()
    yield process
    stop_worker(process)

"""A bench runs beside a live portal on the same Redis and MariaDB without touching it.

The "live portal" here is a real Celery worker of the test suite on the suite's broker and
database. The provisioning bench then runs (small) on the same Redis and MariaDB server: before
bench/env.py it published to the live broker, the live worker took its tasks (for rows it does
not have) and the bench waited until it timed out.
"""

import os
import subprocess
import sys

import pytest
import redis

from bench.env import bench_environment
from tests.harness.processes import ROOT, worker_database_url

pytestmark = [pytest.mark.libvirt, pytest.mark.vcsim, pytest.mark.worker]


def test_bench_environment_never_equals_the_live_one(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://u:p@db.example:3307/cc")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/4")
    first, second = bench_environment("provision"), bench_environment("provision")
    assert first.database_url == "mysql://u:p@db.example:3307/cc_bench_provision"
    assert first.broker_url == "redis://127.0.0.1:6379/4"
    assert first.key_prefix.startswith("cc-bench-provision-")
    assert first.key_prefix != second.key_prefix  # a killed run's worker never takes a new run's tasks


@pytest.mark.django_db(transaction=True)
def test_the_provisioning_bench_completes_beside_a_live_worker(celery_worker):
    broker = os.environ["CELERY_BROKER_URL"]
    live = redis.Redis.from_url(broker)
    live.set("cc-live-portal-marker", "1")  # a "live" key the bench must leave alone
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "CELERY_BROKER_URL": broker}
    result = subprocess.run(
        [sys.executable, "bench/provision.py", "--desktops", "2", "--threads", "2", "--vms", "20"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "ratio portal/raw" in result.stdout
    assert "created 20, errors 0" in result.stdout
    # The live portal's worker is still up and its keys untouched (the bench purged only its own queues).
    assert celery_worker.poll() is None
    assert live.get("cc-live-portal-marker") == b"1"


@pytest.mark.parametrize(
    ("workers", "described"),
    [("site", "hypervisor worker threads x2 + control worker x1"), ("one", "one worker threads x2 (both queues)")],
)
def test_the_classroom_bench_provisions_and_powers_on_a_small_pool(workers, described):
    """bench/classroom.py in a tiny configuration, so it does not rot: a pool follows its schedule from
    creation, and once the bench waited for seats made stopped until it timed out. Both ways of running
    the workers: as deployed (the approval's fulfilment on the control plane's worker), and one worker."""
    env = {**os.environ, "DATABASE_URL": worker_database_url()}
    result = subprocess.run(
        [sys.executable, "bench/classroom.py", "--seats", "2", "--threads", "2", "--workers", workers],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "approval -> 2 running" in result.stdout and "class power-on of 2" in result.stdout
    assert result.stdout.count("ratio portal/raw") == 2
    assert described in result.stdout

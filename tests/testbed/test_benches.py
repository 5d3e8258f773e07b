"""The testbed benches in a tiny configuration, so they don't rot: bench/testbed_provision.py (3 desktops
through the portal and 3 by plain libvirt-python over the testbed's hosts) and bench/console.py (3 console
tickets on h3) run on the session's testbed, which they reuse and leave up."""

import os
import re
import subprocess
import sys

import pytest

from tests.harness.processes import ROOT, worker_database_url

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed, pytest.mark.worker]


def _bench(*argv: str) -> str:
    env = {**os.environ, "DATABASE_URL": worker_database_url()}
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "testbed" in result.stdout and "reused (it was up)" in result.stdout
    return result.stdout


@pytest.mark.django_db
def test_the_provisioning_bench_spreads_over_the_three_hosts_and_prints_the_ratio(testbed):
    out = _bench("bench/testbed_provision.py", "--desktops", "3", "--threads", "2")
    assert "(h1: 1, h2: 1, h3: 1;" in out, out
    ratio = float(re.search(r"ratio portal/raw: ([0-9.]+)", out).group(1))
    assert ratio > 0
    # The bench leaves nothing on the hosts.
    for host in testbed:
        conn = host.connect()
        try:
            assert not [d.name() for d in conn.listAllDomains(0) if d.name().startswith(("cc-bench", "ccb-"))]
        finally:
            conn.close()


@pytest.mark.django_db
def test_the_console_bench_reaches_the_rfb_greeting_on_a_remote_host(testbed):
    out = _bench("bench/console.py", "--tickets", "3")
    assert f"testbed host h3 ({testbed['h3'].address}), 3 tickets" in out, out
    p95 = float(re.search(r"p95 ([0-9.]+) s", out).group(1))
    assert 0 < p95 < 30, out  # the 1-s target is the bench's to judge on an idle machine, not a loaded run's

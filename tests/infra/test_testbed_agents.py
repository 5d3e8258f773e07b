"""Host agents of two test processes on one testbed would undo each other's work (each converges its
whole host from its own database), so starting one takes the testbed's agents lock until the end of the
test, and each test process sends to agents on a broker database of its own (tests/harness/testbed.py)."""

import subprocess
import sys
import uuid
from pathlib import Path

from tests.harness import testbed as harness
from tests.harness.testbed import Host, Testbed, agents_broker_url, agents_lock, agents_release

ROOT = Path(__file__).resolve().parents[2]
OTHER = """
import fcntl, sys
with open(sys.argv[1], "w") as lock:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("held")
    else:
        print("free")
"""


def _other_process_sees(prefix: str) -> str:
    path = f"/run/lock/{prefix}-testbed.agents.lock"
    done = subprocess.run([sys.executable, "-c", OTHER, path], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_agents_lock_keeps_other_processes_out_until_released_and_is_reentrant():
    prefix = f"x{uuid.uuid4().hex[:5]}"
    try:
        agents_lock(prefix)
        agents_lock(prefix)  # a second agent of the same test
        assert _other_process_sees(prefix) == "held"
        agents_release()
        assert _other_process_sees(prefix) == "free"
    finally:
        agents_release()
        Path(f"/run/lock/{prefix}-testbed.agents.lock").unlink(missing_ok=True)


def test_starting_a_host_agent_takes_the_lock_of_the_hosts_testbed(monkeypatch):
    taken = []
    monkeypatch.setattr(harness, "agents_lock", taken.append)
    monkeypatch.setattr(harness.subprocess, "Popen", lambda *args, **kwargs: None)
    host = Host(name="h1", uri="", site="east", address="", data_address="", netns="t7-h1", config={})
    host.popen(sys.executable, "-m", "http.server")
    assert taken == []
    host.popen(sys.executable, "manage.py", "host_agent", "--host", "h1")
    assert taken == ["t7"]


def test_each_xdist_worker_sends_to_agents_on_a_broker_database_of_its_own(monkeypatch):
    broker = "redis://10.213.20.1:6379/0"
    bed = Testbed((), broker, "", ROOT, ROOT, {})  # hosts, broker, shared storage (none), state, config
    seen = set()
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        seen.add(agents_broker_url(bed))
    assert seen == {"redis://10.213.20.1:6379/8", "redis://10.213.20.1:6379/9", "redis://10.213.20.1:6379/10"}
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert agents_broker_url(bed) == "redis://10.213.20.1:6379/8"

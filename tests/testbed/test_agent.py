"""The host agent (manage.py host_agent) inside a testbed host: it consumes its host's own queue and records
the heartbeat; when it is not running, work for the host waits in the queue and the host shows "agent down"."""

import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.test import Client

from compute.models import Desktop, Host
from compute.tasks.hosts import host_heartbeat
from tests.testbed.hosts import add_host

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed, pytest.mark.worker]

ROOT = Path(__file__).resolve().parents[2]


def _wait(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _heartbeat(pk):
    return Host.objects.get(pk=pk).heartbeat_at


@pytest.mark.django_db(transaction=True)
def test_the_agent_runs_inside_its_host_consumes_its_queue_and_a_stopped_one_leaves_work_waiting(
    testbed, scenario, settings
):
    from portal.celery import app

    h2 = testbed["h2"]
    add_host(h2)
    row = Host.objects.get(name="h2")
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("the testbed's agents reach the database through MariaDB's socket: run on MariaDB")
    broker = testbed.broker_url.rsplit("/", 1)[0] + "/5"
    database_url = f"mysql://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}@localhost/{db['NAME']}"
    queue = redis.Redis.from_url(broker)
    queue.delete("host.h2")
    agent = h2.popen(
        sys.executable,
        "manage.py",
        "host_agent",
        "--host",
        "h2",
        cwd=ROOT,
        env={"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker},
    )
    try:
        # At start the agent records a heartbeat, read from the host's own libvirtd.
        assert _wait(lambda: _heartbeat(row.pk) is not None), "the agent recorded no heartbeat"
        assert Host.objects.get(pk=row.pk).agent_alive
        assert any("host_agent" in _cmdline(pid) for pid in h2.pids()), "the agent runs outside h2"
        # A heartbeat sent to its queue from here is run by the agent, on the host.
        Host.objects.filter(pk=row.pk).update(heartbeat_at=None)
        with app.connection_for_write(broker) as conn:
            host_heartbeat.apply_async(args=["h2"], queue=row.queue, connection=conn)
        assert _wait(lambda: _heartbeat(row.pk) is not None), "the agent did not run its queue's task"
    finally:
        agent.terminate()
        agent.wait(timeout=30)

    # No agent: the work waits in the host's queue, the host is "agent down", nothing ran elsewhere.
    Host.objects.filter(pk=row.pk).update(heartbeat_at=None)
    with app.connection_for_write(broker) as conn:
        host_heartbeat.apply_async(args=["h2"], queue=row.queue, connection=conn)
    time.sleep(2)
    assert queue.llen("host.h2") == 1
    assert _heartbeat(row.pk) is None and not Host.objects.get(pk=row.pk).agent_alive
    settings.SECOND_FACTOR_REQUIRED = False
    client = Client()
    client.force_login(scenario.sysadmin)
    assert 'data-testid="agent-down"' in client.get("/compute/admin/hosts/").content.decode()
    queue.delete("host.h2")


def _start_agent(host, broker: str, database_url: str):
    return host.popen(
        sys.executable,
        "manage.py",
        "host_agent",
        "--host",
        host.name,
        cwd=ROOT,
        env={"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker},
    )


def _stop(agent) -> None:
    agent.terminate()
    agent.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_work_for_a_host_whose_agent_is_down_is_never_run_by_another_hosts_agent_and_runs_when_it_returns(
    testbed, scenario, settings
):
    """h2's agent is down, h1's is up: h2's queued work stays queued (h1's agent never takes it), h2 stays
    "agent down"; when h2's agent starts, it runs what waited, on h2."""
    from portal.celery import app

    h1, h2 = testbed["h1"], testbed["h2"]
    add_host(h1)
    add_host(h2)
    row1, row2 = Host.objects.get(name="h1"), Host.objects.get(name="h2")
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("the testbed's agents reach the database through MariaDB's socket: run on MariaDB")
    broker = testbed.broker_url.rsplit("/", 1)[0] + "/6"
    database_url = f"mysql://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}@localhost/{db['NAME']}"
    queue = redis.Redis.from_url(broker)
    queue.delete("host.h1", "host.h2")
    desktop = Desktop.objects.create(
        name="on-h2", vm_name="cc-agent-h2", tenant=scenario.tenant_a, owner=scenario.student,
        endpoint=row2.endpoint, host=row2, state=Desktop.State.RUNNING, power_state="running",
    )  # fmt: skip
    settings.SECOND_FACTOR_REQUIRED = False
    client = Client()
    client.force_login(scenario.student)
    page = lambda: client.get(f"/compute/desktops/{desktop.pk}/").content.decode()  # noqa: E731
    with app.connection_for_write(broker) as conn:
        host_heartbeat.apply_async(args=["h2"], queue=row2.queue, connection=conn)
    agent1 = _start_agent(h1, broker, database_url)
    try:
        assert _wait(lambda: _heartbeat(row1.pk) is not None), "h1's agent recorded no heartbeat"
        with app.connection_for_write(broker) as conn:
            host_heartbeat.apply_async(args=["h1"], queue=row1.queue, connection=conn)
        assert _wait(lambda: queue.llen("host.h1") == 0), "h1's agent did not run its own queue"
        time.sleep(2)
        # h2's work waits for h2: h1's agent did not take it, and h2 is still "agent down".
        assert queue.llen("host.h2") == 1
        assert _heartbeat(row2.pk) is None and not Host.objects.get(pk=row2.pk).agent_alive
        assert Host.objects.get(pk=row1.pk).agent_alive
        # The desktop on h2 says why its network changes wait.
        assert 'data-testid="host-agent-down"' in page()
    finally:
        _stop(agent1)

    agent2 = _start_agent(h2, broker, database_url)
    try:
        assert _wait(lambda: queue.llen("host.h2") == 0), "h2's agent did not run the work that waited for it"
        assert _wait(lambda: _heartbeat(row2.pk) is not None)
        assert Host.objects.get(pk=row2.pk).agent_alive
        assert 'data-testid="host-agent-down"' not in page()
    finally:
        _stop(agent2)
        queue.delete("host.h1", "host.h2")

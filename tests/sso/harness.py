"""Fixtures of campus sign-in, as a pytest plugin (tests/conftest.py's `pytest_plugins`): one slapd and one
CAS server per test process, started on first use, and switches that point the portal at them.

    def test_x(ldap_on, cas_on): ...     # the portal's LDAP_* / CAS_* settings point at the servers

Under pytest-xdist each process starts its own pair on ports of its own.
"""

import pytest

from tests.sso.cas import CasServer
from tests.sso.slapd import Directory


@pytest.fixture(scope="session")
def ldap_directory():
    directory = Directory().start()
    yield directory
    directory.stop()


@pytest.fixture(scope="session")
def cas_server():
    server = CasServer().start()
    yield server
    server.stop()


@pytest.fixture
def ldap_on(settings, ldap_directory):
    """The portal's LDAP settings (CONTRACT.md names) pointed at the test directory, groups mapped to roles."""
    for name, value in ldap_directory.settings().items():
        setattr(settings, name, value)
    settings.LDAP_TIMEOUT = 2.0
    settings.DIRECTORY_GROUP_ROLES = {"cs-teachers": "cs:teacher"}
    return ldap_directory


@pytest.fixture
def cas_on(settings, cas_server):
    for name, value in cas_server.settings().items():
        setattr(settings, name, value)
    settings.CAS_TIMEOUT = 2.0
    return cas_server


@pytest.fixture
def portal_processes(transactional_db, ldap_directory):
    """Two portal web processes (uvicorn) on two loopback ports, one database, the test directory configured:
    as behind a load balancer. Yields their base URLs."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.conftest import _worker_database_url
    from tests.sso.slapd import free_port, stop_process

    env = {**os.environ, "DATABASE_URL": _worker_database_url(), "DEBUG": "false", **ldap_directory.settings()}
    processes, urls = [], []
    for _n in range(2):
        port = free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
                 "--port", str(port), "--lifespan", "off", "--log-level", "warning"],
                cwd=Path(__file__).resolve().parents[2], env=env,
            )
        )  # fmt: skip
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for process, url in zip(processes, urls, strict=True):
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=0.5).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("uvicorn did not start")
                    time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            stop_process(process)

"""The portal's ASGI app (HTTP and the console WebSockets) under uvicorn on a free loopback port.

pytest-django's ``live_server`` is a WSGI server and carries no WebSockets; tests of the console
proxy point their clients (or the browser) here instead.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.harness.processes import ROOT, free_port, stop_process, worker_database_url


@contextlib.contextmanager
def portal_process(**env_extra):
    """uvicorn serving the portal on the test database (and ``env_extra``); yields its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "DEBUG": "false", **env_extra}
    command = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--ws", "wsproto", "--lifespan", "off", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("uvicorn did not start")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=10)


@pytest.fixture
def asgi_server(transactional_db):
    """uvicorn on the test database; yields its base URL."""
    with portal_process() as url:
        yield url

"""What the harness's processes share: the test database's URL for a child process, a free loopback
port, stopping a child that may not want to stop."""

import signal
import socket
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]


def worker_database_url() -> str:
    """The URL of this test process's database, for a child process (worker, uvicorn) to share it."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("a real Celery worker shares the test database: run the suite on MariaDB (make test)")
    auth = quote(db["USER"] or "root") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"mysql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; a process already gone is left alone."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)  # a paused server (a "hung" test directory) must handle the TERM
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

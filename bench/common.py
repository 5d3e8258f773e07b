"""What the benches share: a database and broker of their own (bench/env.py), Django set up on them, a free
loopback port, the portal served by uvicorn as the Procfile serves it, and a line on how busy the machine is."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench.env import isolate  # noqa: E402


def django_on(name: str) -> str:
    """Isolate the bench (bench/env.py: database ``cc_bench_<name>`` made afresh, broker key prefix of
    its own, also for the processes it starts), set Django up on it and migrate; returns its URL."""
    bench = isolate(name)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return bench.database_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def uvicorn(port: int, *, env: dict, workers: int = 2) -> subprocess.Popen:
    """The portal under uvicorn on 127.0.0.1:``port``, once it accepts connections (or after 60 s: a busy machine)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off", "--log-level", "warning", "--workers", str(workers)],
        cwd=ROOT, env=env,
    )  # fmt: skip
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


def print_load() -> None:
    """Other work on the machine skews every number: say how busy it was."""
    print("load average (1/5/15 min): " + " ".join(f"{n:.1f}" for n in os.getloadavg()))

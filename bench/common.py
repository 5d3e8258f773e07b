"""What the benches share: a database of their own (dropped and made again), Django set up on it, a free
loopback port, the portal served by uvicorn as the Procfile serves it, and a line on how busy the machine is."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
MARIADB = "mysql://root@127.0.0.1:3306/cc"


def database_url(name: str, *, default: str = MARIADB, sqlite: bool = True) -> str:
    """The bench's own database ``name`` on the MariaDB server of DATABASE_URL (``default`` when unset).

    When that URL is not MySQL: a SQLite file ``.run/<name>.sqlite3``, or with ``sqlite=False`` the
    database on the local MariaDB (benches of the real worker, which SQLite cannot serve).
    """
    url = os.environ.get("DATABASE_URL", default)
    if not url.startswith("mysql://"):
        if sqlite:
            (ROOT / ".run").mkdir(exist_ok=True)
            return f"sqlite:///{ROOT / '.run' / f'{name}.sqlite3'}"
        url = MARIADB
    return urlparse(url)._replace(path=f"/{name}").geturl()


def fresh_database(url: str) -> None:
    """Drop the database of ``url`` and create it empty (utf8mb4), or delete the SQLite file."""
    parsed = urlparse(url)
    if not url.startswith("mysql://"):
        Path(parsed.path).unlink(missing_ok=True)
        return
    import MySQLdb

    name = parsed.path.lstrip("/")
    conn = MySQLdb.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        passwd=parsed.password or "",
    )
    cursor = conn.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def django_on(url: str) -> None:
    """Set Django up on the database of ``url`` (environment already prepared otherwise) and migrate it."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def uvicorn(port: int, *, env: dict, workers: int = 2) -> subprocess.Popen:
    """The portal under uvicorn on 127.0.0.1:``port``, once it accepts connections (or after 10 s)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off", "--log-level", "warning", "--workers", str(workers)],
        cwd=ROOT, env=env,
    )  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


def print_load() -> None:
    """Other work on the machine skews every number: say how busy it was."""
    print("load average (1/5/15 min): " + " ".join(f"{n:.1f}" for n in os.getloadavg()))

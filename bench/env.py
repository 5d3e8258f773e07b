"""A bench's own database and broker, so that it runs beside a live portal without touching it.

A bench measures the portal on the same MariaDB and Redis that a developer's `make run` (or a
campus deployment) uses, but nothing of the live portal may see its rows or its tasks:

- its database is ``cc_bench_<name>`` on the MariaDB server of DATABASE_URL (127.0.0.1:3306 when
  DATABASE_URL is unset or not MySQL), dropped and created afresh at every run;
- its broker is the Redis of CELERY_BROKER_URL (redis://127.0.0.1:6379/0 when that is not Redis)
  with a key prefix of its own (``CELERY_BROKER_KEY_PREFIX``, kombu's ``global_keyprefix``):
  every queue, unacked set and control channel of the bench lives under that prefix, so the live
  portal's worker never receives a bench task, the bench's worker never receives the portal's,
  and ``purge`` empties only the bench's queues.

``isolate(name)`` writes both into ``os.environ`` before Django starts, so the bench's own
process (the publisher) and every worker or web process it starts with that environment agree.
"""

import os
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

DEFAULT_DATABASE_SERVER = "mysql://root@127.0.0.1:3306/"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class BenchEnvironment:
    database_url: str
    broker_url: str
    key_prefix: str

    @property
    def database_name(self) -> str:
        return urlparse(self.database_url).path.lstrip("/")


def bench_environment(name: str) -> BenchEnvironment:
    """Where the bench called ``name`` runs, derived from (never equal to) the live settings."""
    url = os.environ.get("DATABASE_URL", "")
    server = urlparse(url if url.startswith("mysql://") else DEFAULT_DATABASE_SERVER)
    database_url = server._replace(path=f"/cc_bench_{name}").geturl()
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "rediss://")):
        broker = DEFAULT_BROKER
    # A fresh prefix per run: a worker of an earlier, killed run can never take this run's tasks.
    key_prefix = f"cc-bench-{name}-{uuid.uuid4().hex[:8]}:"
    return BenchEnvironment(database_url=database_url, broker_url=broker, key_prefix=key_prefix)


def fresh_database(database_url: str) -> None:
    """DROP and CREATE the bench's database (utf8mb4), on the server the URL names."""
    import MySQLdb

    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    if not name.startswith("cc_bench_"):
        raise ValueError(f"refusing to recreate {name!r}: a bench only recreates cc_bench_* databases")
    conn = MySQLdb.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        passwd=parsed.password or "",
    )
    try:
        cursor = conn.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()


def isolate(name: str, *, fresh: bool = True) -> BenchEnvironment:
    """Point this process and its children at the bench's own database and broker."""
    bench = bench_environment(name)
    if fresh:
        fresh_database(bench.database_url)
    os.environ.update(
        {
            "DATABASE_URL": bench.database_url,
            "CELERY_BROKER_URL": bench.broker_url,
            "CELERY_BROKER_KEY_PREFIX": bench.key_prefix,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
    )
    # Development settings: a bench never runs with production's checks or its demo guard.
    os.environ.pop("DJANGO_ENV", None)
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    return bench

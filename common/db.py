"""Row locking and deadlock retries shared by every app's models and services.

``LockingManager.locked`` is the one way a row is locked FOR UPDATE; ``share_lock_status``
reads a status under a shared lock; ``retry_on_deadlock`` re-runs a whole transaction that
MariaDB chose as a deadlock victim (services that lock desktops and quota rows together).

MariaDB picks a victim when two transactions wait on each other's row locks (quota rows
are shared by every desktop of a tenant); the victim's whole transaction is rolled back
and may simply run again. Only the outermost transaction can be retried.
"""

import functools
import random
import time

from django.db import OperationalError, connection, models


class LockingManager(models.Manager):
    def locked(self, pk):
        """The row, locked for the rest of the transaction: the one place rows are locked."""
        return self.select_for_update().get(pk=pk)


DEADLOCK_CODES = {1213, 1205}  # deadlock found; lock wait timeout
# A worker's callback may lose several deadlocks in a row while a burst of requests of the same
# tenant takes the same quota and audit rows (measured: five in 0.6 s beside the provisioning bench's
# publisher); ten attempts with a capped backoff wait out about five seconds of such a burst.
ATTEMPTS = 10
BACKOFF_CAP_SECONDS = 1.0


def backoff_seconds(attempt: int) -> float:
    """The wait before attempt ``attempt + 1``: doubling from 20 ms, capped, with jitter (×1 to ×2)."""
    return min(0.02 * (2**attempt), BACKOFF_CAP_SECONDS) * (1 + random.random())


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is MariaDB rolling a transaction back because it lost a row lock to another one."""
    return isinstance(exc, OperationalError) and bool(exc.args) and exc.args[0] in DEADLOCK_CODES


def retry_on_deadlock(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for attempt in range(ATTEMPTS):
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                if not is_lock_conflict(exc) or connection.in_atomic_block or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(backoff_seconds(attempt))
        raise AssertionError("unreachable")

    return wrapper


def share_lock_status(model, pk: int) -> str | None:
    """Read a row's ``status`` under a shared lock until the transaction ends (None: no such row).

    Many transactions may hold it at once (60 seats of a pool created together do not queue
    on it), while a transaction that wants the row FOR UPDATE waits for them all: an image
    version is not retired under a desktop that is being created from it. Django's ORM has
    no shared lock, hence the SQL.
    """
    suffix = {"mysql": " LOCK IN SHARE MODE", "postgresql": " FOR SHARE"}.get(connection.vendor, "")
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {table} WHERE id = %s{suffix}", [pk])  # noqa: S608 - names are ours
        row = cursor.fetchone()
    return row[0] if row else None

"""Deadlock retries for the services that lock desktops and quota rows together.

MariaDB picks a victim when two transactions wait on each other's row locks (quota rows
are shared by every desktop of a tenant); the victim's whole transaction is rolled back
and may simply run again. Only the outermost transaction can be retried.
"""

import functools
import random
import time

from django.db import OperationalError, connection

DEADLOCK_CODES = {1213, 1205}  # deadlock found; lock wait timeout
ATTEMPTS = 5


def retry_on_deadlock(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for attempt in range(ATTEMPTS):
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                code = exc.args[0] if exc.args else None
                if code not in DEADLOCK_CODES or connection.in_atomic_block or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

    return wrapper

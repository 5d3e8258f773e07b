"""Eager Celery tasks that retry as a worker retries.

With ``task_always_eager`` and ``task_eager_propagates`` (the tests' ``eager`` fixture), a task that asks
to be retried (``self.retry``: a transient hypervisor error, e.g. Debian 12's ebtables-nft race when two
firewall changes meet on a host, compute/drivers/libvirt/errors.py) raises Celery's ``Retry`` out of
``apply()`` into the test, where a worker would run the task again after its countdown. ``retrying_apply``
runs it again the same way: after the countdown (at most ``MAX_WAIT`` seconds, a test's patience), with
the retry count Celery carries, so the task's own ``max_retries`` still ends it.
"""

import time
from datetime import datetime

from celery.app.task import Task
from celery.exceptions import Retry
from django.utils import timezone

MAX_WAIT = 2.0
_plain_apply = Task.apply


def _wait(when) -> float:
    if isinstance(when, datetime):
        return max(0.0, (when - timezone.now()).total_seconds())
    return float(when or 0)


def retrying_apply(self, *args, **kwargs):
    try:
        return _plain_apply(self, *args, **kwargs)
    except Retry as retry:
        if retry.sig is None:
            raise
        time.sleep(min(_wait(retry.when), MAX_WAIT))
        return retry.sig.apply()


def install() -> None:
    Task.apply = retrying_apply


def uninstall() -> None:
    Task.apply = _plain_apply

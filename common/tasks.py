"""Starting Celery work from a service: after the transaction commits, by the task's name.

Services never import task modules (tasks import services, so the import would be a
cycle); they name the task instead. Task names are their module paths
(``compute.tasks.desktops.desktop_provision``), so the module is imported when the task is
sent. The id is chosen now, so the service can record it on the row it is changing.
"""

import importlib
import secrets

from django.db import transaction


def task_named(name: str):
    """The task object registered under ``name`` (``package.module.function``)."""
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def enqueue(name: str, *args, queue: str | None = None, **kwargs) -> str:
    """Send task ``name`` with ``args`` once the current transaction commits; return its id.

    Outside a transaction it is sent at once. ``queue`` overrides the task's route (a site's
    or a host's own queue).
    """
    task = task_named(name)  # fail now, inside the service, on a misspelt name
    task_id = secrets.token_hex(16)
    options = {"task_id": task_id}
    if queue:
        options["queue"] = queue
    transaction.on_commit(lambda: task.apply_async(args=args, kwargs=kwargs or None, **options))
    return task_id

"""How a compute task calls the hypervisor: in a slot of the endpoint, retried while the error is transient.

Each task loads its row, returns at once when the row is no longer in the state the task
was queued for (a duplicate or redelivered message does nothing), takes a slot of the
endpoint's concurrency limit, calls the driver and hands the answer to a service.
A transient ``DriverError`` is retried with exponential backoff (the endpoint's
``max_retries`` and ``retry_backoff``); a permanent one, or the last retry, ends in
``desktop_operation_fail`` (error state, quota released when provisioning failed).
The classroom's tasks use the same helpers.
"""

import logging
import random

from compute import services
from compute.drivers.base import DriverError
from compute.hypervisor import EndpointBusy, driver_error_note, driver_for, endpoint_slot
from compute.models import Desktop, Endpoint

log = logging.getLogger(__name__)

TASK_OPTIONS = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "max_retries": None}
BUSY_RETRY_SECONDS = 0.5


def run(task, *, endpoint: Endpoint, holder: str, fn, on_final_error, failures: int, on_transient=None):
    """Run ``fn(driver)`` within an endpoint slot; retry transient errors, record final ones.

    Returns (result, True) on success and (None, False) once a final failure is recorded.
    ``failures`` counts transient failures so far: waiting for a slot is not one.
    """
    try:
        with endpoint_slot(endpoint_id=endpoint.pk, holder=holder):
            return fn(driver_for(endpoint)), True
    except EndpointBusy:
        raise task.retry(countdown=BUSY_RETRY_SECONDS + random.random(), max_retries=None)  # noqa: B904
    except DriverError as exc:
        driver_error_note(endpoint, exc)
        if not exc.permanent and failures < endpoint.max_retries:
            if on_transient is not None:
                on_transient(exc)
            countdown = endpoint.retry_backoff * (2**failures) * (0.8 + random.random() * 0.4)
            log.info("%s: transient %s, retry %d in %.1fs", task.name, exc, failures + 1, countdown)
            kwargs = {**(task.request.kwargs or {}), "failures": failures + 1}
            raise task.retry(countdown=countdown, max_retries=None, kwargs=kwargs)  # noqa: B904
        on_final_error(exc)
        return None, False


def run_for_desktop(task, desktop: Desktop, *, what: str, fn, failures: int, on_final_error=None):
    """``run`` for an operation on a desktop: on its endpoint, its error noted while retried, and in the
    end the operation failed on it (``desktop_operation_fail``) unless ``on_final_error`` says otherwise."""
    return run(
        task,
        endpoint=desktop.endpoint,
        holder=task.request.id or f"{what}-{desktop.pk}",
        fn=fn,
        on_final_error=on_final_error or fail_desktop(desktop.pk),
        on_transient=note_desktop(desktop.pk),
        failures=failures,
    )


def load_desktop(desktop_id: int) -> Desktop | None:
    """The desktop with what a task needs of it (endpoint, site, image version and image, flavor), or None
    when it is gone."""
    return (
        Desktop.objects.select_related("endpoint__site", "tenant", "image_version__image", "flavor__gpu_profile")
        .filter(pk=desktop_id)
        .first()
    )


def fail_desktop(desktop_id: int):
    """``on_final_error`` of a desktop operation: the operation failed for good."""
    return lambda exc: services.desktop_operation_fail(desktop_id=desktop_id, error=exc.message)


def note_desktop(desktop_id: int):
    """``on_transient`` of a desktop operation: the error is remembered on the desktop while it is retried."""
    return lambda exc: services.desktop_note_error(desktop_id=desktop_id, error=exc.message)


def held_by(task, desktop: Desktop | None) -> bool:
    """Whether a task that holds the desktop busy (reset, resize, rebuild) still finds it held for itself."""
    return (
        desktop is not None
        and desktop.state == Desktop.State.BUSY
        and desktop.task_id == (task.request.id or desktop.task_id)
    )

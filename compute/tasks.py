"""Celery tasks for every hypervisor action: thin, idempotent, retried on transient driver errors.

Each task loads its row, returns at once when the row is no longer in the state the task
was queued for (a duplicate or redelivered message does nothing), takes a slot of the
endpoint's concurrency limit, calls the driver and hands the answer to a service.
A transient ``DriverError`` is retried with exponential backoff (the endpoint's
``max_retries`` and ``retry_backoff``); a permanent one, or the last retry, ends in
``desktop_operation_fail`` (error state, quota released when provisioning failed).
"""

import logging
import random

from celery import shared_task

from compute import networking, services
from compute.drivers.base import DriverError, ErrorCode, PowerState
from compute.hypervisor import EndpointBusy, driver_error_note, driver_for, endpoint_slot, vm_spec
from compute.models import Desktop, Endpoint, ImageVersion, Snapshot, Volume

log = logging.getLogger(__name__)

TASK_OPTIONS = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "max_retries": None}
BUSY_RETRY_SECONDS = 0.5


def _run(task, *, endpoint: Endpoint, holder: str, fn, on_final_error, failures: int, on_transient=None):
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


def _desktop(desktop_id: int) -> Desktop | None:
    return (
        Desktop.objects.select_related("endpoint__site", "tenant", "image_version", "flavor__gpu_profile")
        .filter(pk=desktop_id)
        .first()
    )


def _fail_desktop(desktop_id):
    return lambda exc: services.desktop_operation_fail(desktop_id=desktop_id, error=exc.message)


def _note_desktop(desktop_id):
    return lambda exc: services.desktop_note_error(desktop_id=desktop_id, error=exc.message)


def _create_vm(driver, desktop, spec, source: str = ""):
    # The desktop's network, filters and DHCP binding on this endpoint first, then the VM with its NICs.
    nics = networking.desktop_network_prepare(desktop=desktop, driver=driver)
    spec = networking.with_nics(spec, nics)
    # A clone copies its source's system disk; any other desktop starts from the golden image.
    info = driver.clone_vm(source, spec, start=True) if source else driver.create_vm(spec, start=True)
    networking.desktop_nics_observed(desktop=desktop, nics=info.nics)
    return info


def _clone_source(desktop: Desktop) -> tuple[str, int | None]:
    """(VM name, id of the desktop held for the copy) of a clone's source; ("", None) for other desktops."""
    if not desktop.cloned_from_id:
        return "", None
    source = Desktop.objects.filter(pk=desktop.cloned_from_id).values("vm_name", "state", "task_id").first()
    if source is None:
        return "", None
    # The source is held only for the clone request that holds it (not for a later retry).
    held = source["state"] == Desktop.State.BUSY and source["task_id"] == desktop.task_id
    return source["vm_name"], desktop.cloned_from_id if held else None


@shared_task(**TASK_OPTIONS)
def desktop_provision(self, desktop_id: int, failures: int = 0):
    desktop = _desktop(desktop_id)
    if desktop is None or desktop.state != Desktop.State.PROVISIONING:
        return "skipped"
    spec = vm_spec(desktop)
    source, held = _clone_source(desktop)

    def fail(exc):
        services.desktop_operation_fail(desktop_id=desktop_id, error=exc.message)
        if held:
            services.desktop_clone_source_release(desktop_id=held)

    info, ok = _run(
        self,
        endpoint=desktop.endpoint,
        holder=self.request.id or f"provision-{desktop_id}",
        fn=lambda driver: _create_vm(driver, desktop, spec, source),
        on_final_error=fail,
        on_transient=_note_desktop(desktop_id),
        failures=failures,
    )
    if ok:
        services.desktop_provision_finish(desktop_id=desktop_id, info=info)
        if held:
            services.desktop_clone_source_release(desktop_id=held)
    return "done" if ok else "failed"


_POWER_STATES = {"start": Desktop.State.STARTING, "stop": Desktop.State.STOPPING, "reboot": Desktop.State.REBOOTING}


def _power_call(driver, name: str, verb: str):
    try:
        if verb == "start":
            driver.start(name)
        elif verb == "stop":
            # The portal's stop is an immediate power-off: there may be no guest OS to ask.
            driver.shutdown(name, force=True)
        else:
            driver.reboot(name)
    except DriverError as exc:
        # Already in the wanted state (a redelivered task, or a change made outside the portal).
        if exc.code != ErrorCode.INVALID_STATE:
            raise
    return driver.get_vm(name)


@shared_task(**TASK_OPTIONS)
def desktop_power(self, desktop_id: int, verb: str, failures: int = 0):
    desktop = _desktop(desktop_id)
    if desktop is None or desktop.state != _POWER_STATES[verb]:
        return "skipped"
    info, ok = _run(
        self,
        endpoint=desktop.endpoint,
        holder=self.request.id or f"power-{desktop_id}",
        fn=lambda driver: _power_call(driver, desktop.vm_name, verb),
        on_final_error=_fail_desktop(desktop_id),
        on_transient=_note_desktop(desktop_id),
        failures=failures,
    )
    if ok:
        services.desktop_settle(desktop_id=desktop_id, info=info)
    return "done" if ok else "failed"


def _reset_call(driver, name: str):
    info = driver.get_vm(name)
    was_running = info.power_state == PowerState.RUNNING
    if was_running:
        driver.shutdown(name, force=True)
    driver.reset_system_disk(name)
    if was_running:
        driver.start(name)
    return driver.get_vm(name)


@shared_task(**TASK_OPTIONS)
def desktop_reset(self, desktop_id: int, failures: int = 0):
    desktop = _desktop(desktop_id)
    if (
        desktop is None
        or desktop.state != Desktop.State.BUSY
        or desktop.task_id != (self.request.id or desktop.task_id)
    ):
        return "skipped"
    info, ok = _run(
        self,
        endpoint=desktop.endpoint,
        holder=self.request.id or f"reset-{desktop_id}",
        fn=lambda driver: _reset_call(driver, desktop.vm_name),
        on_final_error=_fail_desktop(desktop_id),
        on_transient=_note_desktop(desktop_id),
        failures=failures,
    )
    if ok:
        services.desktop_settle(desktop_id=desktop_id, info=info)
        desktop.snapshots.exclude(state=Snapshot.State.DELETED).update(state=Snapshot.State.DELETED)
    return "done" if ok else "failed"


def _resize_call(driver, desktop: Desktop, flavor_id: int, gpu_device: str):
    from compute.models import Flavor

    flavor = Flavor.objects.select_related("gpu_profile").get(pk=flavor_id)
    shape = vm_spec(desktop, flavor=flavor, gpu_device=gpu_device)
    # Applying the same shape twice is harmless: a redelivered task converges.
    return driver.resize(desktop.vm_name, vcpus=shape.vcpus, memory_mib=shape.memory_mib, gpu=shape.gpu)


@shared_task(**TASK_OPTIONS)
def desktop_resize(self, desktop_id: int, flavor_id: int, gpu_device: str, hold: str, failures: int = 0):
    desktop = _desktop(desktop_id)
    if (
        desktop is None
        or desktop.state != Desktop.State.BUSY
        or desktop.task_id != (self.request.id or desktop.task_id)
    ):
        return "skipped"
    info, ok = _run(
        self,
        endpoint=desktop.endpoint,
        holder=self.request.id or f"resize-{desktop_id}",
        fn=lambda driver: _resize_call(driver, desktop, flavor_id, gpu_device),
        on_final_error=lambda exc: services.desktop_resize_fail(desktop_id=desktop_id, hold=hold, error=exc.message),
        on_transient=_note_desktop(desktop_id),
        failures=failures,
    )
    if ok:
        services.desktop_resize_finish(
            desktop_id=desktop_id, flavor_id=flavor_id, gpu_device=gpu_device, hold=hold, info=info
        )
    return "done" if ok else "failed"


def _destroy_call(driver, desktop: Desktop) -> None:
    """The VM (a VM already gone is not an error), then the data disks it had, which are not named after it."""
    driver.delete_vm(desktop.vm_name)
    for pool, name in desktop.volumes.exclude(state__in=(Volume.State.DETACHED, Volume.State.DELETED)).values_list(
        "pool", "volume_name"
    ):
        if pool and name:
            driver.volume_delete(pool, name)


@shared_task(**TASK_OPTIONS)
def desktop_destroy(self, desktop_id: int, failures: int = 0):
    desktop = _desktop(desktop_id)
    if desktop is None or desktop.state != Desktop.State.DELETING:
        return "skipped"
    _info, ok = _run(
        self,
        endpoint=desktop.endpoint,
        holder=self.request.id or f"destroy-{desktop_id}",
        fn=lambda driver: _destroy_call(driver, desktop),
        on_final_error=_fail_desktop(desktop_id),
        on_transient=_note_desktop(desktop_id),
        failures=failures,
    )
    if ok:
        services.desktop_destroy_finish(desktop_id=desktop_id)
        # Off its endpoint's DHCP, addresses held; what fails here the periodic DHCP sync repairs.
        networking.desktop_bindings_release(desktop=desktop)
    return "done" if ok else "failed"


_SNAPSHOT_STATES = {
    "create": Snapshot.State.CREATING,
    "revert": Snapshot.State.REVERTING,
    "delete": Snapshot.State.DELETING,
}


def _snapshot_call(driver, vm: str, snapshot: str, description: str, op: str):
    if op == "create":
        if snapshot not in {s.name for s in driver.snapshot_list(vm)}:  # redelivered: already taken
            driver.snapshot_create(vm, snapshot, description)
    elif op == "revert":
        driver.snapshot_revert(vm, snapshot)
    else:
        try:
            driver.snapshot_delete(vm, snapshot)
        except DriverError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
    return driver.get_vm(vm)


@shared_task(**TASK_OPTIONS)
def snapshot_run(self, snapshot_id: int, op: str, failures: int = 0):
    snapshot = Snapshot.objects.select_related("desktop__endpoint__site").filter(pk=snapshot_id).first()
    if snapshot is None or snapshot.state != _SNAPSHOT_STATES[op] or snapshot.desktop.state != Desktop.State.BUSY:
        return "skipped"
    desktop = snapshot.desktop
    info, ok = _run(
        self,
        endpoint=desktop.endpoint,
        holder=self.request.id or f"snapshot-{snapshot_id}",
        fn=lambda driver: _snapshot_call(driver, desktop.vm_name, snapshot.name, snapshot.description, op),
        on_final_error=lambda exc: services.snapshot_finish(
            snapshot_id=snapshot_id, op=op, info=None, error=exc.message
        ),
        on_transient=_note_desktop(desktop.pk),
        failures=failures,
    )
    if ok:
        services.snapshot_finish(snapshot_id=snapshot_id, op=op, info=info)
    return "done" if ok else "failed"


def _volume_call(driver, volume: Volume, op: str):
    """(target, path, volume name) after attaching, detaching or deleting ``volume``; safe to repeat."""
    if op == "delete":
        driver.volume_delete(volume.pool, volume.volume_name)  # a volume already gone is not an error
        return "", "", volume.volume_name
    vm = volume.desktop.vm_name
    if op == "attach":
        if volume.volume_name:  # libvirt: a volume of its own, made once, attached to whichever desktop
            driver.volume_create(volume.pool, volume.volume_name, volume.size_gib)
            disk = driver.attach_volume(vm, volume.pool, volume.volume_name)
        else:  # vCenter: a new disk file of the VM
            disk = driver.attach_disk(vm, volume.size_gib, pool=volume.pool)
        return disk.target, disk.path, disk.volume
    try:
        driver.detach_disk(vm, volume.target, delete_volume=not volume.volume_name)
    except DriverError as exc:
        if exc.code != ErrorCode.NOT_FOUND:  # redelivered: already detached
            raise
    return volume.target, volume.path, volume.volume_name


_VOLUME_STATES = {"attach": Volume.State.ATTACHING, "detach": Volume.State.DETACHING, "delete": Volume.State.DELETING}


@shared_task(**TASK_OPTIONS)
def volume_run(self, volume_id: int, op: str, failures: int = 0):
    volume = Volume.objects.select_related("desktop__endpoint__site", "endpoint__site").filter(pk=volume_id).first()
    if volume is None or volume.state != _VOLUME_STATES[op]:
        return "skipped"
    desktop_id = volume.desktop_id
    result, ok = _run(
        self,
        endpoint=volume.desktop.endpoint if volume.desktop_id else volume.endpoint,
        holder=self.request.id or f"volume-{volume_id}",
        fn=lambda driver: _volume_call(driver, volume, op),
        on_final_error=lambda exc: services.volume_finish(volume_id=volume_id, op=op, error=exc.message),
        on_transient=_note_desktop(desktop_id) if desktop_id else None,
        failures=failures,
    )
    if ok:
        target, path, name = result
        services.volume_finish(volume_id=volume_id, op=op, target=target, path=path, volume_name=name)
    return "done" if ok else "failed"


@shared_task(**TASK_OPTIONS)
def image_import(self, version_id: int, failures: int = 0):
    version = ImageVersion.objects.select_related("endpoint__site").filter(pk=version_id).first()
    if version is None or version.status != ImageVersion.Status.PENDING:
        return "skipped"
    _info, ok = _run(
        self,
        endpoint=version.endpoint,
        holder=self.request.id or f"image-{version_id}",
        fn=lambda driver: driver.image_import(version.pool, version.volume, version.source_path),
        on_final_error=lambda exc: services.image_version_finish(version_id=version_id, error=exc.message),
        failures=failures,
    )
    if ok:
        services.image_version_finish(version_id=version_id)
    return "done" if ok else "failed"


@shared_task(bind=True, acks_late=True)
def reconcile_all(self):
    """The periodic reconciliation of every endpoint (portal.celery beat_schedule)."""
    from compute.reconcile import reconcile

    return reconcile()

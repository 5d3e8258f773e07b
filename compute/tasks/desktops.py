"""Celery tasks of a desktop's lifecycle: provision (or clone), power, reset, rebuild, resize, destroy."""

from celery import shared_task

from compute import networking, services
from compute.drivers.base import DriverError, ErrorCode, PowerState
from compute.hypervisor import vm_spec
from compute.models import Desktop, Flavor, Volume
from compute.tasks.runner import TASK_OPTIONS, held_by, load_desktop, run_for_desktop


def _create_vm(driver, desktop, spec, source: str = "", start: bool = True):
    # The desktop's network, filters and DHCP binding on this endpoint first, then the VM with its NICs.
    nics = networking.desktop_network_prepare(desktop=desktop, driver=driver)
    spec = networking.with_nics(spec, nics)
    # A clone copies its source's system disk; any other desktop starts from the golden image.
    info = driver.clone_vm(source, spec, start=start) if source else driver.create_vm(spec, start=start)
    networking.desktop_nics_observed(desktop=desktop, nics=info.nics, requested=nics)
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
def desktop_provision(self, desktop_id: int, failures: int = 0, start: bool = True):
    """Make the VM (or clone it); ``start`` False leaves it stopped (a course desktop made outside class)."""
    desktop = load_desktop(desktop_id)
    if desktop is None or desktop.state != Desktop.State.PROVISIONING:
        return "skipped"
    spec = vm_spec(desktop)
    source, held = _clone_source(desktop)

    def fail(exc):
        services.desktop_operation_fail(desktop_id=desktop_id, error=exc.message)
        if held:
            services.desktop_clone_source_release(desktop_id=held)

    info, ok = run_for_desktop(
        self,
        desktop,
        what="provision",
        fn=lambda driver: _create_vm(driver, desktop, spec, source, start),
        failures=failures,
        on_final_error=fail,
    )
    if ok:
        services.desktop_provision_finish(desktop_id=desktop_id, info=info)
        if held:
            services.desktop_clone_source_release(desktop_id=held)
    return "done" if ok else "failed"


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
    desktop = load_desktop(desktop_id)
    if desktop is None or desktop.state != Desktop.POWER_VERBS[verb][1]:  # the state the verb went into
        return "skipped"
    info, ok = run_for_desktop(
        self, desktop, what="power", fn=lambda driver: _power_call(driver, desktop.vm_name, verb), failures=failures
    )
    if ok:
        services.desktop_settle(desktop_id=desktop_id, info=info)
    return "done" if ok else "failed"


def _disks_off(driver, desktop: Desktop, leaving: list[int], drop: list[int]) -> None:
    """Before a hand-over's reset: the data disks ``leaving`` come off the VM; those in ``drop`` are then
    wiped and deleted (a vCenter disk goes with its detaching). Safe to repeat."""
    for volume in Volume.objects.filter(pk__in=leaving, state=Volume.State.DETACHING).order_by("pk"):
        try:
            driver.detach_disk(desktop.vm_name, volume.target, delete_volume=not volume.volume_name)
        except DriverError as exc:
            if exc.code != ErrorCode.NOT_FOUND:  # redelivered: already off the VM
                raise
        if volume.pk in drop and volume.volume_name:
            driver.volume_delete(volume.pool, volume.volume_name)


def _disks_report(leaving: list[int], drop: list[int], error: str = "") -> None:
    """The disks taken off: detached (kept) or deleted; after a failure, in error (to detach again)."""
    for volume_id in leaving:
        op = "delete" if volume_id in drop and not error else "detach"
        services.volume_finish(volume_id=volume_id, op=op, error=error)


def _reset_call(driver, desktop: Desktop, leaving: list[int], drop: list[int]):
    name = desktop.vm_name
    info = driver.get_vm(name)
    was_running = info.power_state == PowerState.RUNNING
    if was_running:
        driver.shutdown(name, force=True)
    _disks_off(driver, desktop, leaving, drop)
    driver.reset_system_disk(name)
    if was_running:
        driver.start(name)
    return driver.get_vm(name)


def _fail_with_disks(desktop_id: int, leaving: list[int], drop: list[int]):
    def fail(exc):
        services.desktop_operation_fail(desktop_id=desktop_id, error=exc.message)
        _disks_report(leaving, drop, error=exc.message)

    return fail


def _disk_changing_run(task, desktop_id: int, *, what: str, call, finish, failures: int, leaving, drop) -> str:
    """A reset or a rebuild: ``call(driver, desktop, leaving, drop)`` on the hypervisor; on success
    ``finish`` records it and the data disks taken off are reported; on final failure both are told."""
    leaving, drop = list(leaving), list(drop)
    desktop = load_desktop(desktop_id)
    if not held_by(task, desktop):
        return "skipped"
    info, ok = run_for_desktop(
        task,
        desktop,
        what=what,
        fn=lambda driver: call(driver, desktop, leaving, drop),
        failures=failures,
        on_final_error=_fail_with_disks(desktop_id, leaving, drop),
    )
    if ok:
        finish(desktop_id=desktop_id, info=info)
        _disks_report(leaving, drop)
    return "done" if ok else "failed"


@shared_task(**TASK_OPTIONS)
def desktop_reset(self, desktop_id: int, failures: int = 0, leaving: list[int] = (), drop: list[int] = ()):
    """A fresh system disk; at a hand-over, the previous owner's data disks taken off first."""
    return _disk_changing_run(
        self, desktop_id, what="reset", call=_reset_call, finish=services.desktop_reset_finish,
        failures=failures, leaving=leaving, drop=drop,
    )  # fmt: skip


def _rebuild_call(driver, desktop: Desktop, leaving: list[int], drop: list[int]):
    """Delete the VM with its disks and make it again from the desktop's (new) image version."""
    try:
        running = driver.get_vm(desktop.vm_name).power_state == PowerState.RUNNING
        _disks_off(driver, desktop, leaving, drop)
        driver.delete_vm(desktop.vm_name)
    except DriverError as exc:
        if exc.code != ErrorCode.NOT_FOUND:  # gone already: a redelivered task after the delete
            raise
        running = desktop.stable_state == Desktop.State.RUNNING
    return driver.create_vm(vm_spec(desktop), start=running)


@shared_task(**TASK_OPTIONS)
def desktop_rebuild(self, desktop_id: int, failures: int = 0, leaving: list[int] = (), drop: list[int] = ()):
    """A reset onto another image version (``desktops_reset``, ``desktop_hand_over``)."""
    return _disk_changing_run(
        self, desktop_id, what="rebuild", call=_rebuild_call, finish=services.desktop_settle,
        failures=failures, leaving=leaving, drop=drop,
    )  # fmt: skip


def _resize_call(driver, desktop: Desktop, flavor_id: int, gpu_device: str):
    flavor = Flavor.objects.select_related("gpu_profile").get(pk=flavor_id)
    shape = vm_spec(desktop, flavor=flavor, gpu_device=gpu_device)
    # Applying the same shape twice is harmless: a redelivered task converges.
    return driver.resize(desktop.vm_name, vcpus=shape.vcpus, memory_mib=shape.memory_mib, gpu=shape.gpu)


@shared_task(**TASK_OPTIONS)
def desktop_resize(self, desktop_id: int, flavor_id: int, gpu_device: str, hold: str, failures: int = 0):
    desktop = load_desktop(desktop_id)
    if not held_by(self, desktop):
        return "skipped"
    info, ok = run_for_desktop(
        self,
        desktop,
        what="resize",
        fn=lambda driver: _resize_call(driver, desktop, flavor_id, gpu_device),
        failures=failures,
        on_final_error=lambda exc: services.desktop_resize_fail(desktop_id=desktop_id, hold=hold, error=exc.message),
    )
    if ok:
        services.desktop_resize_finish(
            desktop_id=desktop_id, flavor_id=flavor_id, gpu_device=gpu_device, hold=hold, info=info
        )
    return "done" if ok else "failed"


def _destroy_call(driver, desktop: Desktop, keep_volumes: bool) -> None:
    """The VM (a VM already gone is not an error), then the data disks it had, which are not named after it;
    with ``keep_volumes`` a libvirt data disk stays (its own volume, detached by the deletion of the VM)."""
    driver.delete_vm(desktop.vm_name)
    for pool, name in desktop.volumes.exclude(state__in=(Volume.State.DETACHED, Volume.State.DELETED)).values_list(
        "pool", "volume_name"
    ):
        if pool and name and not keep_volumes:
            driver.volume_delete(pool, name)


@shared_task(**TASK_OPTIONS)
def desktop_destroy(self, desktop_id: int, failures: int = 0, keep_volumes: bool = False):
    desktop = load_desktop(desktop_id)
    if desktop is None or desktop.state != Desktop.State.DELETING:
        return "skipped"
    _info, ok = run_for_desktop(
        self,
        desktop,
        what="destroy",
        fn=lambda driver: _destroy_call(driver, desktop, keep_volumes),
        failures=failures,
    )
    if ok:
        services.desktop_destroy_finish(desktop_id=desktop_id, keep_volumes=keep_volumes)
        # Off its endpoint's DHCP, addresses held; what fails here the periodic DHCP sync repairs.
        networking.desktop_bindings_release(desktop=desktop)
    return "done" if ok else "failed"

"""Celery task of data disks: attach one to its desktop, detach it, or delete a detached one."""

from celery import shared_task

from compute import services
from compute.drivers.base import DriverError, ErrorCode
from compute.models import Volume
from compute.tasks.runner import TASK_OPTIONS, note_desktop, run


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
    result, ok = run(
        self,
        endpoint=volume.desktop.endpoint if volume.desktop_id else volume.endpoint,
        holder=self.request.id or f"volume-{volume_id}",
        fn=lambda driver: _volume_call(driver, volume, op),
        on_final_error=lambda exc: services.volume_finish(volume_id=volume_id, op=op, error=exc.message),
        on_transient=note_desktop(desktop_id) if desktop_id else None,
        failures=failures,
    )
    if ok:
        target, path, name = result
        services.volume_finish(volume_id=volume_id, op=op, target=target, path=path, volume_name=name)
    return "done" if ok else "failed"

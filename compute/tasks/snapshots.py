"""Celery task of a desktop's snapshots: take, revert to or delete one on the hypervisor."""

from celery import shared_task

from compute import services
from compute.drivers.base import DriverError, ErrorCode
from compute.models import Desktop, Snapshot
from compute.tasks.runner import TASK_OPTIONS, run_for_desktop

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
    info, ok = run_for_desktop(
        self,
        desktop,
        what="snapshot",
        fn=lambda driver: _snapshot_call(driver, desktop.vm_name, snapshot.name, snapshot.description, op),
        failures=failures,
        on_final_error=lambda exc: services.snapshot_finish(
            snapshot_id=snapshot_id, op=op, info=None, error=exc.message
        ),
    )
    if ok:
        services.snapshot_finish(snapshot_id=snapshot_id, op=op, info=info)
    return "done" if ok else "failed"

"""HA's periodic task: one round of detection → fencing → restart (compute/ha/round.py), every few seconds."""

import logging

from celery import shared_task

from compute.drivers.base import DriverError

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def ha_tick() -> dict:
    from compute.ha.round import ha_round

    report = ha_round()
    if report["fenced"] or report["restarted"]:
        log.warning("HA round: %s", report)
    return report


@shared_task(ignore_result=True, autoretry_for=(DriverError,), retry_backoff=5, max_retries=5)
def host_stale_copies_remove(host_id: int) -> list[str]:
    """A host cleared after HA fenced it still defines the desktops that now run elsewhere (shut off, their
    disks shared with the running copy): undefine them there, so nobody can start a second copy."""
    from compute.hypervisor import driver_forget, driver_open
    from compute.models import Desktop, Host

    host = Host.objects.select_related("endpoint").filter(pk=host_id).first()
    if host is None:
        return []
    driver_forget(host.endpoint_id)  # the process's connection to it died with it
    driver = driver_open(host.endpoint)
    try:
        here = {vm.name for vm in driver.list_vms()}
        moved = (
            Desktop.objects.filter(vm_name__in=here)
            .exclude(endpoint=host.endpoint)
            .exclude(state=Desktop.State.DELETED)
            .values_list("vm_name", flat=True)
        )
        removed = [name for name in sorted(moved) if driver.forget_vm(name)]
    finally:
        driver.close()
    if removed:
        log.warning("HA: removed stale copies on %s: %s", host.name, removed)
    return removed

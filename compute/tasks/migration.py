"""The Celery task of a migration: the target made ready, the VM moved peer to peer, the network after it.

Runs on the source site's queue, in a slot of the source endpoint. In order: the desktop's networks and
filters on the target (the domain needs them to start there); for copied storage its volumes on the
target; the move itself (``migrate_vm``: progress written for the page, a cancellation honoured); then
the row follows (endpoint, host, console), the DHCP bindings, elastic IPs and port forwards follow
(``desktop_bindings_push``), and copied disks leave the source. Any failure before the VM is on the
target leaves it running on the source: the desktop returns to its state with the error.
A migration is never retried by itself: the admin sees the error and decides.
"""

import logging
import random

from celery import shared_task

from compute.drivers.base import DriverError, MigrationSpec
from compute.hypervisor import EndpointBusy, driver_error_note, driver_for, endpoint_slot
from compute.models import DesktopMigration, Host, SharedStorage
from compute.networking import desktop_addresses, desktop_bindings_push, network_ensure_on
from compute.networking.filters import define_filters
from compute.networking.specs import is_libvirt
from compute.services.migration import migration_begin, migration_fail, migration_finish, migration_progress
from compute.tasks.runner import TASK_OPTIONS, load_desktop

log = logging.getLogger(__name__)


def _target_network_prepare(desktop, target: Host, driver) -> None:
    """The desktop's libvirt networks and NIC filters on the target, before the VM arrives there."""
    addresses = desktop_addresses(desktop)
    endpoint = target.endpoint
    if not addresses or not is_libvirt(endpoint):
        return
    for network in {a.subnet.network_id: a.subnet.network for a in addresses}.values():
        network_ensure_on(network=network, endpoint=endpoint, driver=driver)
    define_filters(addresses, endpoint, driver)


def _spec(migration: DesktopMigration, target_disks) -> MigrationSpec:
    source, target = migration.source, migration.target
    storage = SharedStorage.of(source.endpoint.cluster_id)
    return MigrationSpec(
        target_uri=target.endpoint.url,
        copy_storage=migration.copy_storage,
        unsafe=bool(storage and storage.unsafe_migration and not migration.copy_storage),
        bandwidth_mib=source.migration_bandwidth_mib,
        target_disks=tuple((d.target, d.path) for d in target_disks),
    )


def _move(migration: DesktopMigration, desktop, source_driver, target_driver):
    """Everything up to the VM running on the target; returns (result, disks left on the source)."""
    _target_network_prepare(desktop, migration.target, target_driver)
    disks = source_driver.get_vm(desktop.vm_name).disks
    prepared = target_driver.migration_disks_prepare(disks, copy=migration.copy_storage)
    try:
        result = source_driver.migrate_vm(
            desktop.vm_name,
            _spec(migration, prepared),
            progress=lambda p: migration_progress(
                migration_id=migration.pk, data_total=p.data_total, data_remaining=p.data_remaining
            ),
        )
    except DriverError:
        _drop(target_driver, prepared)
        raise
    if result.cancelled:
        _drop(target_driver, prepared)
    return result, disks if migration.copy_storage else ()


def _drop(driver, disks) -> None:
    """Volumes a migration made (or left) that nothing uses: best effort, the error only logged."""
    for disk in disks:
        try:
            driver.volume_delete(disk.pool, disk.volume)
        except DriverError as exc:
            log.warning("volume %s/%s stays: %s", disk.pool, disk.volume, exc)


def _load(migration_id: int) -> DesktopMigration | None:
    return (
        DesktopMigration.objects.select_related("source__endpoint", "target__endpoint").filter(pk=migration_id).first()
    )


@shared_task(**TASK_OPTIONS)
def desktop_migration_run(self, migration_id: int):
    migration = _load(migration_id)
    if migration is None or migration.state != DesktopMigration.State.QUEUED:
        return "skipped"
    desktop = load_desktop(migration.desktop_id)
    source_endpoint = migration.source.endpoint
    try:
        with endpoint_slot(endpoint_id=source_endpoint.pk, holder=self.request.id or f"migrate-{migration_id}"):
            if not migration_begin(migration_id=migration_id):
                return "skipped"
            source_driver = driver_for(source_endpoint)
            target_driver = driver_for(migration.target.endpoint)
            result, source_disks = _move(migration, desktop, source_driver, target_driver)
            if result.cancelled:
                migration_fail(migration_id=migration_id, cancelled=True)
                return "cancelled"
            info = target_driver.get_vm(desktop.vm_name)
            downtime = target_driver.migration_downtime(desktop.vm_name) if result.live else None
    except EndpointBusy:
        raise self.retry(countdown=0.5 + random.random(), max_retries=None)  # noqa: B904
    except DriverError as exc:
        driver_error_note(source_endpoint, exc)
        migration_fail(migration_id=migration_id, error=exc.message)
        return "failed"
    migration_finish(migration_id=migration_id, info=info, downtime_ms=downtime, duration_ms=result.duration_ms)
    _follow(desktop, source_driver, source_disks)
    return "done"


def _follow(desktop, source_driver, source_disks) -> None:
    """After the move: the network follows the desktop, copied disks leave the source."""
    try:
        desktop_bindings_push(desktop=desktop)
    except DriverError as exc:  # the periodic DHCP and firewall sync repairs it
        log.warning("bindings of desktop %s follow later: %s", desktop.pk, exc)
    _drop(source_driver, source_disks)


@shared_task
def drs_tick():
    """Every minute: automatic DRS of each cluster that has it on (compute/drs.py)."""
    from compute.drs import drs_run
    from compute.models import DrsPolicy

    started = 0
    for policy in DrsPolicy.objects.filter(mode=DrsPolicy.Mode.AUTOMATIC).select_related("cluster"):
        started += len(drs_run(policy.cluster))
    return started

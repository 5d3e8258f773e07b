"""Moving a domain to another host, peer to peer: live (shared storage, or its disks copied) or cold.

The source's libvirtd connects to the target's URI itself (``VIR_MIGRATE_PEER2PEER``), so the portal
needs no route between hosts; the definition moves with the VM (``PERSIST_DEST``, ``UNDEFINE_SOURCE``).
While QEMU copies memory (and disks), ``jobStats`` is polled for the data remaining; a progress
callback that answers True aborts the job (the VM keeps running on the source). The downtime is read
on the target from the completed job's statistics, which libvirt hands over at the end.

Copied storage (``VIR_MIGRATE_NON_SHARED_INC``): libvirt cannot pre-create the overlay of a linked
clone on the target, and does not see a ``type='volume'`` disk as already there, so the target's
volumes are made first (``migration_disks_prepare``: an overlay of the same golden image, at the same
path) and the running VM is sent with file disks at those paths (``DEST_XML``), while its persistent
definition keeps its pool volumes (``PERSIST_XML``).
"""

from __future__ import annotations

import contextlib
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

import libvirt

from ..base import GIB, DiskInfo, DriverError, ErrorCode, MigrationProgress, MigrationResult, MigrationSpec
from . import objects as lo
from .connection import Connection

POLL_SECONDS = 0.3


def _live_flags(spec: MigrationSpec) -> int:
    flags = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PEER2PEER
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    if spec.copy_storage:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    elif spec.unsafe:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    return flags


def _file_disks(dom: libvirt.virDomain, target_disks: dict[str, str]) -> str:
    """The running domain's migratable XML with its pool volumes as the target's files."""
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE))
    for disk in root.findall("devices/disk"):
        dev = disk.find("target").get("dev") if disk.find("target") is not None else ""
        source = disk.find("source")
        if disk.get("type") == "volume" and source is not None and dev in target_disks:
            disk.set("type", "file")
            source.attrib.clear()
            source.set("file", target_disks[dev])
    return ET.tostring(root, encoding="unicode")


def _params(dom: libvirt.virDomain, spec: MigrationSpec) -> dict:
    params: dict = {}
    if spec.bandwidth_mib:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = spec.bandwidth_mib
    if spec.copy_storage:
        disks = dict(spec.target_disks)
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = sorted(disks)
        params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = _file_disks(dom, disks)
        params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = dom.XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_MIGRATABLE
        )
    return params


def _progress_of(dom: libvirt.virDomain) -> MigrationProgress | None:
    try:
        stats = dom.jobStats()
    except libvirt.libvirtError:
        return None  # the job is ending (or the domain already left)
    return MigrationProgress(
        data_total=int(stats.get("data_total", 0)),
        data_processed=int(stats.get("data_processed", 0)),
        data_remaining=int(stats.get("data_remaining", 0)),
    )


def _watch(dom: libvirt.virDomain, worker: threading.Thread, progress: Callable | None) -> bool:
    """Poll the job while ``worker`` migrates; returns whether it was aborted at the callback's word."""
    aborted = False
    while worker.is_alive():
        worker.join(POLL_SECONDS)
        if progress is None or not worker.is_alive():
            continue
        seen = _progress_of(dom)
        if seen is not None and progress(seen) and not aborted:
            with contextlib.suppress(libvirt.libvirtError):  # finished meanwhile: nothing to abort
                dom.abortJob()
                aborted = True
    return aborted


class Migration(Connection):
    def migrate_vm(
        self, name: str, spec: MigrationSpec, progress: Callable[[MigrationProgress], bool] | None = None
    ) -> MigrationResult:
        """Move the VM to ``spec.target_uri``; a stopped VM moves as its definition (cold)."""
        with self._calls(f"cannot migrate VM {name!r} to {spec.target_uri}") as conn:
            dom = lo.domain(conn, name)
            started = time.monotonic()
            if not dom.isActive():
                flags = (
                    libvirt.VIR_MIGRATE_OFFLINE
                    | libvirt.VIR_MIGRATE_PEER2PEER
                    | libvirt.VIR_MIGRATE_PERSIST_DEST
                    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
                )
                dom.migrateToURI3(spec.target_uri, {}, flags)
                return MigrationResult(live=False, duration_ms=int((time.monotonic() - started) * 1000))
            flags, params = _live_flags(spec), _params(dom, spec)
            failure: list[libvirt.libvirtError] = []

            def run() -> None:
                try:
                    dom.migrateToURI3(spec.target_uri, params, flags)
                except libvirt.libvirtError as exc:
                    failure.append(exc)

            worker = threading.Thread(target=run, name=f"migrate-{name}", daemon=True)
            worker.start()
            aborted = _watch(dom, worker, progress)
            duration = int((time.monotonic() - started) * 1000)
            if failure and aborted:
                return MigrationResult(live=True, cancelled=True, duration_ms=duration)
            if failure:
                raise failure[0]
            return MigrationResult(live=True, duration_ms=duration)

    def migration_disks_prepare(self, disks: tuple[DiskInfo, ...], *, copy: bool) -> tuple[DiskInfo, ...]:
        """Here, the VM's disks before it arrives. Shared storage (``copy`` False): the pools are refreshed,
        so a volume another host made is known here. Copied storage: the volumes the migration writes
        into, an overlay of the same golden image (found here at the backing file's path) or an empty
        volume, of the same name and pool; idempotent. Returns the volumes made."""
        with self._calls("cannot prepare the disks of a migration") as conn:
            made = []
            for disk in disks:
                if not (disk.pool and disk.volume):
                    continue
                storage = lo.pool(conn, disk.pool)
                storage.refresh(0)
                if not copy:
                    continue
                if disk.backing:
                    golden = lo.find_volume(storage, disk.backing.rsplit("/", 1)[-1])
                    if golden is None or golden.path() != disk.backing:
                        raise DriverError(
                            f"golden image {disk.backing} is not in pool {disk.pool!r} here",
                            permanent=True,
                            code=ErrorCode.NOT_FOUND,
                        )
                    vol, _new = lo.linked_clone(storage, golden, disk.volume, disk.size_bytes)
                else:
                    vol, _new = lo.empty_volume(storage, disk.volume, max(1, -(-disk.size_bytes // GIB)))
                made.append(lo.disk_info(disk.target, disk.pool, vol))
            return tuple(made)

    def migration_downtime(self, name: str) -> int | None:
        """The downtime (ms) of the migration that brought the VM here, as libvirt measured it."""
        with self._calls(f"cannot read the migration statistics of {name!r}") as conn:
            try:
                stats = lo.domain(conn, name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
            except libvirt.libvirtError:
                return None
            return int(stats["downtime"]) if "downtime" in stats else None

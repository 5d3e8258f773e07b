"""libvirt's objects by name (domains, pools, volumes, networks), and the volumes the driver makes for a VM.

``find_*`` return None when the object is not there; the plain names raise NOT_FOUND.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import libvirt

from .. import xml as lx
from ..base import GIB, DiskInfo, DriverError, ErrorCode, PowerState, VolumeInfo
from .errors import tolerating

T = TypeVar("T")

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.RUNNING,  # shutting down, still running
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.STOPPED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.PAUSED,
}


def _find(lookup: Callable[[], T], missing: int) -> T | None:
    """``lookup()``, or None when libvirt answers with the error code ``missing``."""
    with tolerating(missing):
        return lookup()
    return None


def _get(lookup: Callable[[], T], missing: int, message: str) -> T:
    """``lookup()``; when libvirt answers with ``missing``, NOT_FOUND caused by libvirt's own error."""
    try:
        return lookup()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == missing:
            raise DriverError(message, permanent=True, code=ErrorCode.NOT_FOUND) from exc
        raise


def find_domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    return _find(lambda: conn.lookupByName(name), libvirt.VIR_ERR_NO_DOMAIN)


def domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain:
    return _get(lambda: conn.lookupByName(name), libvirt.VIR_ERR_NO_DOMAIN, f"VM {name!r} not found")


def power_state(dom: libvirt.virDomain) -> PowerState:
    return _STATES.get(dom.state()[0], PowerState.UNKNOWN)


def snapshot(dom: libvirt.virDomain, name: str) -> libvirt.virDomainSnapshot:
    return _get(
        lambda: dom.snapshotLookupByName(name, 0),
        libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
        f"snapshot {name!r} of VM {dom.name()!r} not found",
    )


def find_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool | None:
    return _find(lambda: conn.storagePoolLookupByName(name), libvirt.VIR_ERR_NO_STORAGE_POOL)


def pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    return _get(
        lambda: conn.storagePoolLookupByName(name), libvirt.VIR_ERR_NO_STORAGE_POOL, f"storage pool {name!r} not found"
    )


def find_volume(storage: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    """The volume, or None. A miss refreshes the pool and looks again: on shared storage another host may
    have made it (a desktop restarted elsewhere by HA finds its own system disk there)."""
    found = _find(lambda: storage.storageVolLookupByName(name), libvirt.VIR_ERR_NO_STORAGE_VOL)
    if found is None:
        with contextlib.suppress(libvirt.libvirtError):
            storage.refresh(0)
        found = _find(lambda: storage.storageVolLookupByName(name), libvirt.VIR_ERR_NO_STORAGE_VOL)
    return found


def wipe_and_delete(vol: libvirt.virStorageVol, *, wipe: bool = True) -> None:
    """Zero the volume's blocks, then delete it: a directory or LVM pool hands freed blocks to the next
    volume as they are, so nothing of a deleted disk may stay in them (等保 剩余信息保护). ``wipe`` False
    only for libvirt's test driver, which cannot wipe (its volumes are memory)."""
    if wipe:
        vol.wipe(0)
    vol.delete(0)


def volume(storage: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol:
    found = find_volume(storage, name)
    if found is not None:
        return found
    return _get(
        lambda: storage.storageVolLookupByName(name),
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        f"volume {name!r} not found in pool {storage.name()!r}",
    )


def find_network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork | None:
    return _find(lambda: conn.networkLookupByName(name), libvirt.VIR_ERR_NO_NETWORK)


def network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork:
    return _get(lambda: conn.networkLookupByName(name), libvirt.VIR_ERR_NO_NETWORK, f"network {name!r} not found")


def volume_format(vol: libvirt.virStorageVol) -> tuple[str, str]:
    """(format, backing path) of a volume."""
    root = lx.parse(vol.XMLDesc(0))
    fmt = root.find("target/format")
    return (fmt.get("type", "raw") if fmt is not None else "raw"), root.findtext("backingStore/path", "")


def volume_info(storage: libvirt.virStoragePool, vol: libvirt.virStorageVol) -> VolumeInfo:
    fmt, backing = volume_format(vol)
    _type, capacity, allocation = vol.info()
    return VolumeInfo(
        pool=storage.name(),
        name=vol.name(),
        path=vol.path(),
        format=fmt,
        capacity_bytes=capacity,
        allocation_bytes=allocation,
        backing=backing,
    )


def disk_info(target: str, pool_name: str, vol: libvirt.virStorageVol) -> DiskInfo:
    return DiskInfo(target=target, size_bytes=vol.info()[1], pool=pool_name, volume=vol.name(), path=vol.path())


def refuse_taken(storage: libvirt.virStoragePool, name: str) -> None:
    """EXISTS when the pool already has a volume ``name`` (golden images are never overwritten)."""
    if find_volume(storage, name) is not None:
        raise DriverError(
            f"pool {storage.name()!r} already has a volume {name!r}", permanent=True, code=ErrorCode.EXISTS
        )


def linked_clone(
    storage: libvirt.virStoragePool, golden: libvirt.virStorageVol, name: str, capacity: int
) -> tuple[libvirt.virStorageVol, bool]:
    """The overlay volume ``name`` backed by ``golden``, and whether it is new; a retry reuses its own."""
    golden_format, _ = volume_format(golden)
    existing = find_volume(storage, name)
    if existing is not None:
        _fmt, backing = volume_format(existing)
        if backing == golden.path():
            return existing, False
        raise DriverError(
            f"volume {name!r} already exists and is not a clone of {golden.name()!r}",
            permanent=True,
            code=ErrorCode.EXISTS,
        )
    xml = lx.volume_xml(name, capacity, backing_path=golden.path(), backing_format=golden_format)
    return storage.createXML(xml, 0), True


def empty_volume(storage: libvirt.virStoragePool, name: str, size_gib: int) -> tuple[libvirt.virStorageVol, bool]:
    """The empty qcow2 volume ``name``, and whether it is new; an existing one is kept as it is."""
    if size_gib < 1:
        raise DriverError("a data disk needs at least 1 GiB", permanent=True, code=ErrorCode.INVALID_SPEC)
    existing = find_volume(storage, name)
    if existing is not None:
        return existing, False
    return storage.createXML(lx.volume_xml(name, size_gib * GIB), 0), True


def stopped_domain(conn: libvirt.virConnect, name: str, purpose: str) -> libvirt.virDomain:
    """The domain ``name``, which must be shut off for ``purpose`` (e.g. "to change its size")."""
    dom = domain(conn, name)
    if dom.isActive():
        raise DriverError(f"VM {name!r} must be stopped {purpose}", permanent=True, code=ErrorCode.INVALID_STATE)
    return dom


@contextlib.contextmanager
def deleted_on_failure() -> Iterator[list[libvirt.virStorageVol]]:
    """Volumes added to the yielded list are deleted again when the block fails: a retry trips over nothing."""
    made: list[libvirt.virStorageVol] = []
    try:
        yield made
    except (libvirt.libvirtError, DriverError):
        for vol in made:
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete(0)
        raise

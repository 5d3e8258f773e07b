"""A domain's disks: data disks attached and detached (live and persistently), the system disk reset."""

from __future__ import annotations

import contextlib
import secrets
import xml.etree.ElementTree as ET

import libvirt

from .. import xml as lx
from ..base import DiskInfo, DriverError, ErrorCode, unsupported
from . import objects as lo
from .connection import Connection, is_test_driver


def _affect(dom: libvirt.virDomain) -> int:
    """Change the persistent config, and the running VM too when there is one."""
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if dom.isActive():
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    return flags


def _hotplug(conn: libvirt.virConnect, name: str, what: str) -> tuple[libvirt.virDomain, ET.Element]:
    """The domain and its persistent XML, for a device change (which libvirt's test driver cannot make)."""
    if is_test_driver(conn):
        raise unsupported(what, "libvirt's test driver")
    dom = lo.domain(conn, name)
    return dom, lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def _free_target(dom: libvirt.virDomain, root: ET.Element) -> str:
    """A target free both in the persistent config and in the running VM (a disk may be in only one)."""
    live = lx.parse(dom.XMLDesc(0))
    return lx.next_target({t.get("dev", "") for r in (root, live) for t in r.findall("devices/disk/target")})


def _golden(
    conn: libvirt.virConnect, name: str, root: ET.Element, pool_name: str, old: libvirt.virStorageVol | None
) -> libvirt.virStorageVol:
    """The golden volume the VM was cloned from: named in our metadata, else the old overlay's backing file."""
    golden_pool, golden_name, _ = lx.image_meta(root)
    if not golden_name and old is not None:
        golden_path = lo.volume_format(old)[1]
        golden = conn.storageVolLookupByPath(golden_path) if golden_path else None
    else:
        golden = lo.volume(lo.pool(conn, golden_pool or pool_name), golden_name)
    if golden is None:
        raise DriverError(
            f"VM {name!r} was not cloned from a golden image", permanent=True, code=ErrorCode.INVALID_STATE
        )
    return golden


class Disks(Connection):
    def attach_disk(self, name: str, size_gib: int, *, pool: str = "") -> DiskInfo:
        """A new empty qcow2 volume, attached live (when running) and in the persistent config."""
        with self._calls(f"cannot attach a disk to VM {name!r}") as conn:
            dom, root = _hotplug(conn, name, "disk attach")
            if not pool:
                pool = lx.disk_source(lx.domain_disks(root)[0])[0] if lx.domain_disks(root) else ""
            if not pool:
                raise DriverError("no storage pool given for the disk", permanent=True, code=ErrorCode.INVALID_SPEC)
            target = _free_target(dom, root)
            storage = lo.pool(conn, pool)
            with lo.deleted_on_failure() as made:
                vol, _new = lo.empty_volume(storage, f"{name}-data-{secrets.token_hex(4)}.qcow2", size_gib)
                made.append(vol)
                dom.attachDeviceFlags(lx.disk_xml(pool, vol.name(), target), _affect(dom))
            return lo.disk_info(target, pool, vol)

    def attach_volume(self, name: str, pool: str, volume_name: str) -> DiskInfo:
        """Attach an existing volume (live when running, and persistently); attached already: its disk."""
        with self._calls(f"cannot attach volume {volume_name!r} to VM {name!r}") as conn:
            dom, root = _hotplug(conn, name, "disk attach")
            vol = lo.volume(lo.pool(conn, pool), volume_name)
            for disk in lx.domain_disks(root):
                if lx.disk_source(disk)[:2] == (pool, volume_name):  # a redelivered task: done already
                    return lo.disk_info(disk.find("target").get("dev", ""), pool, vol)
            target = _free_target(dom, root)
            dom.attachDeviceFlags(lx.disk_xml(pool, volume_name, target), _affect(dom))
            return lo.disk_info(target, pool, vol)

    def detach_disk(self, name: str, target: str, *, delete_volume: bool = True) -> None:
        """Remove a data disk from the config now, and ask the guest to release it live.

        A live unplug needs the guest's cooperation; libvirt's synchronous detach waits
        for it (5 s, then gives up silently). The persistent config is what counts, so
        the live part goes through the asynchronous detach-by-alias and we do not wait.
        """
        if target == lx.SYSTEM_TARGET:
            raise DriverError("the system disk cannot be detached", permanent=True, code=ErrorCode.INVALID_SPEC)
        with self._calls(f"cannot detach disk {target!r} from VM {name!r}") as conn:
            dom, root = _hotplug(conn, name, "disk detach")
            disk = lx.disk_at(root, target)
            live_disk = lx.disk_at(lx.parse(dom.XMLDesc(0)), target) if dom.isActive() else None
            if disk is None and live_disk is None:
                raise DriverError(f"VM {name!r} has no disk {target!r}", permanent=True, code=ErrorCode.NOT_FOUND)
            pool, volume, _path = lx.disk_source(disk if disk is not None else live_disk)
            if disk is not None:
                dom.detachDeviceFlags(ET.tostring(disk, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            alias = live_disk.find("alias") if live_disk is not None else None
            if alias is not None and alias.get("name"):
                dom.detachDeviceAlias(alias.get("name"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
            if delete_volume and pool and volume.startswith(f"{name}-"):
                # QEMU keeps its open file until the guest lets go; the pool forgets it now.
                with contextlib.suppress(libvirt.libvirtError):
                    conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).delete(0)

    def reset_system_disk(self, name: str) -> None:
        """Swap the system disk for a fresh linked clone of the same golden image (VM stopped).

        Internal snapshots lived in the old overlay, so their metadata goes with it.
        """
        with self._calls(f"cannot reset the system disk of VM {name!r}") as conn:
            dom = lo.stopped_domain(conn, name, "to reset its system disk")
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            system = lx.disk_at(root, lx.SYSTEM_TARGET)
            if system is None:
                raise DriverError(f"VM {name!r} has no system disk", permanent=True, code=ErrorCode.NOT_FOUND)
            pool_name, old_name, _path = lx.disk_source(system)
            storage = lo.pool(conn, pool_name)
            old = lo.find_volume(storage, old_name)
            golden = _golden(conn, name, root, pool_name, old)
            capacity = old.info()[1] if old is not None else golden.info()[1]
            new, _ = lo.linked_clone(storage, golden, f"{name}-system-{secrets.token_hex(4)}.qcow2", capacity)
            for snap in dom.listAllSnapshots(0):
                with contextlib.suppress(libvirt.libvirtError):
                    snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
            system.find("source").set("volume", new.name())
            with lo.deleted_on_failure() as made:
                made.append(new)
                conn.defineXML(ET.tostring(root, encoding="unicode"))
            if old is not None and old_name.startswith(f"{name}-") and old_name != golden.name():
                lo.wipe_and_delete(old, wipe=not is_test_driver(conn))

"""Creating, cloning, resizing and deleting domains; a retry of any of them finds its own work done.

System disks are qcow2 linked clones of a golden volume in the same pool; every volume
this driver creates is named after its VM (``<vm>-system*.qcow2``, ``<vm>-data-*.qcow2``),
and only such volumes are ever deleted with the VM, so golden images are never touched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import libvirt

from .. import xml as lx
from ..base import GIB, DriverError, ErrorCode, GpuSpec, PowerState, VMInfo, VMSpec
from . import objects as lo
from .connection import Connection, is_test_driver
from .errors import tolerating
from .inventory import vm_info


def _started(conn: libvirt.virConnect, dom: libvirt.virDomain, start: bool) -> VMInfo:
    if start:
        dom.create()
    return vm_info(conn, dom)


class Domains(Connection):
    def create_vm(self, spec: VMSpec, *, start: bool = True) -> VMInfo:
        if not (spec.image_pool and spec.image_volume):
            raise DriverError(
                "a libvirt VM needs image_pool and image_volume (its golden image)",
                permanent=True,
                code=ErrorCode.INVALID_SPEC,
            )
        with self._calls(f"cannot create VM {spec.name!r}") as conn:
            existing = self._existing_same(conn, spec, start=start)
            if existing is not None:
                return existing
            storage = lo.pool(conn, spec.image_pool)
            golden = lo.volume(storage, spec.image_volume)
            capacity = max(golden.info()[1], spec.system_disk_gib * GIB)
            with lo.deleted_on_failure() as made:
                system, new = lo.linked_clone(storage, golden, f"{spec.name}-system.qcow2", capacity)
                if new:
                    made.append(system)
                data: list[tuple[str, str]] = []
                for index, disk in enumerate(spec.data_disks, start=1):
                    data_pool = lo.pool(conn, disk.pool) if disk.pool else storage
                    vol, new = lo.empty_volume(data_pool, f"{spec.name}-data-{index}.qcow2", disk.size_gib)
                    if new:
                        made.append(vol)
                    data.append((data_pool.name(), vol.name()))
                xml = lx.domain_xml(spec, system_pool=storage.name(), system_volume=system.name(), data_volumes=data)
                dom = conn.defineXML(xml)
            return _started(conn, dom, start)

    def _existing_same(self, conn: libvirt.virConnect, spec: VMSpec, *, start: bool) -> VMInfo | None:
        """The domain already created from this very spec (started if asked), None if the name is free.

        A domain of that name made from another spec is EXISTS.
        """
        dom = lo.find_domain(conn, spec.name)
        if dom is None:
            return None
        _pool, _volume, fingerprint = lx.image_meta(lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
        if fingerprint != lx.spec_fingerprint(spec):
            raise DriverError(
                f"a different VM named {spec.name!r} already exists", permanent=True, code=ErrorCode.EXISTS
            )
        return _started(conn, dom, start and lo.power_state(dom) == PowerState.STOPPED)

    def clone_vm(self, source: str, spec: VMSpec, *, start: bool = True) -> VMInfo:
        """A new VM ``spec.name`` whose system disk is a copy of the stopped VM ``source``'s.

        The copy is made by the storage pool (virStorageVolCreateXMLFrom, so it works on a
        remote host too) and reads through the source's backing chain: the new volume stands
        alone, and neither the source's overlay nor the golden image is touched. Data disks
        and snapshots are not copied. Running it again after success returns the same VM.
        """
        with self._calls(f"cannot clone VM {source!r} to {spec.name!r}") as conn:
            existing = self._existing_same(conn, spec, start=start)
            if existing is not None:
                return existing
            src = lo.stopped_domain(conn, source, "to be cloned")
            system = lx.disk_at(lx.parse(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)), lx.SYSTEM_TARGET)
            pool_name, volume_name, _path = lx.disk_source(system) if system is not None else ("", "", "")
            if not (pool_name and volume_name):
                raise DriverError(
                    f"VM {source!r} has no system disk in a storage pool", permanent=True, code=ErrorCode.INVALID_STATE
                )
            storage = lo.pool(conn, pool_name)
            original = lo.volume(storage, volume_name)
            copy_name = f"{spec.name}-system.qcow2"
            stale = lo.find_volume(storage, copy_name)
            if stale is not None:
                # Left by an attempt that died before defining the VM: it may be incomplete.
                stale.delete(0)
            capacity = max(original.info()[1], spec.system_disk_gib * GIB)
            with lo.deleted_on_failure() as made:
                made.append(storage.createXMLFrom(lx.volume_xml(copy_name, capacity), original, 0))
                dom = conn.defineXML(lx.domain_xml(spec, system_pool=storage.name(), system_volume=made[0].name()))
            return _started(conn, dom, start)

    def resize(self, name: str, *, vcpus: int, memory_mib: int, gpu: GpuSpec | None = None) -> VMInfo:
        """Redefine a stopped VM with new vCPU, memory and GPU devices (``gpu`` None: none). Idempotent."""
        with self._calls(f"cannot resize VM {name!r}") as conn:
            dom = lo.stopped_domain(conn, name, "to change its size")
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            lx.set_shape(root, vcpus=vcpus, memory_mib=memory_mib, gpu=gpu)
            return vm_info(conn, conn.defineXML(ET.tostring(root, encoding="unicode")))

    def forget_vm(self, name: str) -> bool:
        """Power off and undefine the VM here, keeping its volumes: a copy left on a host that HA fenced,
        whose disks now serve the desktop on another host. Returns whether there was one."""
        with self._calls(f"cannot remove the definition of VM {name!r}") as conn:
            dom = lo.find_domain(conn, name)
            if dom is None:
                return False
            if dom.isActive():
                with tolerating(libvirt.VIR_ERR_OPERATION_INVALID):
                    dom.destroy()
            with tolerating(libvirt.VIR_ERR_NO_DOMAIN):
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                )
            return True

    def delete_vm(self, name: str) -> None:
        """Destroy, wipe and delete the VM's own volumes, undefine. A VM already gone is not an error."""
        with self._calls(f"cannot delete VM {name!r}") as conn:
            dom = lo.find_domain(conn, name)
            if dom is None:
                return
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if dom.isActive():
                with tolerating(libvirt.VIR_ERR_OPERATION_INVALID):  # stopped meanwhile
                    dom.destroy()
            # Volumes go before the definition: a retry after a crash still finds the domain,
            # so it still knows which volumes are left to delete.
            for vol in _owned_volumes(conn, name, root):
                with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
                    lo.wipe_and_delete(vol, wipe=not is_test_driver(conn))
            with tolerating(libvirt.VIR_ERR_NO_DOMAIN):
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                )


def _owned_volumes(conn: libvirt.virConnect, name: str, root: ET.Element) -> list[libvirt.virStorageVol]:
    """Volumes of the VM's disks that this driver made for it (named after it), never the golden one."""
    golden = lx.image_meta(root)[:2]
    owned = []
    for disk in lx.domain_disks(root):
        pool, volume, _path = lx.disk_source(disk)
        if not pool or (pool, volume) == golden or not volume.startswith(f"{name}-"):
            continue
        with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
            owned.append(conn.storagePoolLookupByName(pool).storageVolLookupByName(volume))
    return owned

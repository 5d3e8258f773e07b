"""A host's capacity as libvirt reports it: CPUs and memory, NUMA cells (capabilities), storage pools,
and from the node-device API its GPUs (PCI display controllers) and their mediated-device (vGPU) types."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET

import libvirt

from ..base import MIB, HostInfo

DISPLAY_CLASS = 0x03  # PCI base class "display controller"


def pci_address(cap: ET.Element) -> str:
    """``0000:00:02.0`` from a node device's pci capability."""
    parts = [int(cap.findtext(tag, "0"), 0) for tag in ("domain", "bus", "slot", "function")]
    return f"{parts[0]:04x}:{parts[1]:02x}:{parts[2]:02x}.{parts[3]:x}"


def gpus_from_nodedev(xml_docs: list[str]) -> tuple[list[str], list[dict]]:
    """GPU PCI addresses and their mediated-device types, from node devices' XML descriptions."""
    gpus: list[str] = []
    mdev_types: list[dict] = []
    for doc in xml_docs:
        cap = ET.fromstring(doc).find("capability[@type='pci']")
        if cap is None:
            continue
        address = pci_address(cap)
        types = cap.findall("capability[@type='mdev_types']/type")
        if int(cap.findtext("class", "0"), 0) >> 16 != DISPLAY_CLASS and not types:
            continue
        gpus.append(address)
        for mdev in types:
            available = mdev.findtext("availableInstances") or mdev.findtext("available_instances") or "0"
            mdev_types.append(
                {
                    "type": mdev.get("id", ""),
                    "name": mdev.findtext("name", "") or mdev.get("id", ""),
                    "available": int(available),
                    "device": address,
                }
            )
    return gpus, mdev_types


def _numa_cells(conn: libvirt.virConnect) -> int:
    cells = ET.fromstring(conn.getCapabilities()).find("host/topology/cells")
    return int(cells.get("num", "1")) if cells is not None else 1


def _node_devices(conn: libvirt.virConnect) -> list[str]:
    # libvirt's test driver has no node-device listing by capability: no GPUs there.
    with contextlib.suppress(libvirt.libvirtError):
        return [dev.XMLDesc(0) for dev in conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)]
    return []


def _storage(conn: libvirt.virConnect) -> list[dict]:
    pools = []
    with contextlib.suppress(libvirt.libvirtError):
        for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
            with contextlib.suppress(libvirt.libvirtError):
                _state, capacity, _allocation, available = pool.info()
                pools.append({"name": pool.name(), "capacity_bytes": capacity, "available_bytes": available})
    return pools


def host_info(conn: libvirt.virConnect) -> HostInfo:
    _model, memory_mib, cpus, *_ = conn.getInfo()
    version = conn.getVersion()
    major, minor, micro = version // 1_000_000, version // 1000 % 1000, version % 1000
    gpus, mdev_types = gpus_from_nodedev(_node_devices(conn))
    return HostInfo(
        name=conn.getHostname(),
        cpus=cpus,
        memory_mib=memory_mib,
        free_memory_mib=conn.getFreeMemory() // MIB,
        hypervisor=f"{conn.getType()} {major}.{minor}.{micro}",
        numa_cells=_numa_cells(conn),
        gpus=tuple(gpus),
        mdev_types=tuple(mdev_types),
        storage=tuple(sorted(_storage(conn), key=lambda p: p["name"])),
    )

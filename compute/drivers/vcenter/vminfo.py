"""vSphere's VM properties as VMInfo, from pyVmomi objects or from the raw XML of a SOAP reply.

Both paths first turn devices into the same plain dicts (``_device_dict``, ``_device_from_xml``),
so one function (``vm_info``) builds the VMInfo.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from pyVmomi import vim

from ..base import DiskInfo, GpuSpec, NicInfo, PowerState, VMInfo

POWER = {
    "poweredOn": PowerState.RUNNING,
    "poweredOff": PowerState.STOPPED,
    "suspended": PowerState.PAUSED,
}

VM_PROPERTIES = [
    "name",
    "config.instanceUuid",
    "config.uuid",
    "config.template",
    "config.annotation",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "runtime.powerState",
    "runtime.host",
    "guest.ipAddress",
]

_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
NS = "{urn:vim25}"


def text(el: ET.Element | None, path: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(path)
    return found.text or default if found is not None else default


def _xsi(el: ET.Element) -> str:
    return el.get(_XSI_TYPE, "").split(":")[-1]


def _device_dict(dev: Any) -> dict[str, Any]:
    """The few device fields VMInfo needs, as a plain dict (same shape as _device_from_xml)."""
    out: dict[str, Any] = {"key": str(dev.key), "label": dev.deviceInfo.label if dev.deviceInfo else ""}
    if isinstance(dev, vim.vm.device.VirtualDisk):
        out["kind"] = "disk"
        out["size"] = dev.capacityInBytes or (dev.capacityInKB or 0) * 1024
        out["file"] = getattr(dev.backing, "fileName", "") or ""
        parent = getattr(dev.backing, "parent", None)
        out["backing"] = getattr(parent, "fileName", "") if parent is not None else ""
    elif isinstance(dev, vim.vm.device.VirtualEthernetCard):
        out["kind"] = "nic"
        out["mac"] = dev.macAddress or ""
        backing = dev.backing
        if isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
            out["portgroup"] = backing.port.portgroupKey
        elif isinstance(backing, vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo):
            out["network"] = backing.opaqueNetworkId
        else:
            out["network"] = getattr(backing, "deviceName", "") or ""
    elif isinstance(dev, vim.vm.device.VirtualPCIPassthrough):
        out["kind"] = "gpu"
        out["vgpu"] = getattr(dev.backing, "vgpu", "") or ""
    return out


def _device_from_xml(el: ET.Element) -> dict[str, Any]:
    kind = _xsi(el)
    out: dict[str, Any] = {"key": text(el, f"{NS}key"), "label": text(el, f"{NS}deviceInfo/{NS}label")}
    backing = el.find(f"{NS}backing")
    if kind == "VirtualDisk":
        out["kind"] = "disk"
        size = text(el, f"{NS}capacityInBytes")
        out["size"] = int(size) if size else int(text(el, f"{NS}capacityInKB", "0")) * 1024
        out["file"] = text(backing, f"{NS}fileName")
        out["backing"] = text(backing, f"{NS}parent/{NS}fileName")
    elif el.find(f"{NS}macAddress") is not None or kind.startswith(("VirtualE1000", "VirtualVmxnet", "VirtualPCNet")):
        out["kind"] = "nic"
        out["mac"] = text(el, f"{NS}macAddress")
        btype = _xsi(backing) if backing is not None else ""
        if btype == "VirtualEthernetCardDistributedVirtualPortBackingInfo":
            out["portgroup"] = text(backing, f"{NS}port/{NS}portgroupKey")
        elif btype == "VirtualEthernetCardOpaqueNetworkBackingInfo":
            out["network"] = text(backing, f"{NS}opaqueNetworkId")
        else:
            out["network"] = text(backing, f"{NS}deviceName")
    elif kind == "VirtualPCIPassthrough":
        out["kind"] = "gpu"
        out["vgpu"] = text(backing, f"{NS}vgpu")
    return out


def value_from_xml(val: ET.Element | None) -> Any:
    """A property value from raw SOAP: devices become dicts, the rest stays text (typed later)."""
    if val is None:
        return None
    if _xsi(val) == "ArrayOfVirtualDevice":
        return [_device_from_xml(d) for d in val]
    return val.text


def props_from_objects(props: dict[str, Any]) -> dict[str, Any]:
    """pyVmomi's property values in the shape value_from_xml gives them."""
    out = dict(props)
    if "config.hardware.device" in out:
        out["config.hardware.device"] = [_device_dict(d) for d in out["config.hardware.device"] or []]
    if "runtime.host" in out and out["runtime.host"] is not None:
        out["runtime.host"] = out["runtime.host"]._moId
    if "runtime.powerState" in out:
        out["runtime.powerState"] = str(out["runtime.powerState"])
    return out


def disk_info(dev: dict[str, Any]) -> DiskInfo:
    return DiskInfo(
        target=dev["key"], size_bytes=dev.get("size", 0), path=dev.get("file", ""), backing=dev.get("backing", "")
    )


def disk_info_of(dev: Any) -> DiskInfo:
    """DiskInfo of a pyVmomi VirtualDisk."""
    return disk_info(_device_dict(dev))


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def vm_info(moid: str, props: dict[str, Any], portgroups: dict[str, str], hosts: dict[str, str]) -> VMInfo:
    """VMInfo from plain properties; ``portgroups`` names DV portgroups by key, ``hosts`` hosts by id."""
    devices = props.get("config.hardware.device") or []
    nics = tuple(
        NicInfo(mac=d.get("mac", ""), network=portgroups.get(d.get("portgroup", ""), "") or d.get("network", ""))
        for d in devices
        if d.get("kind") == "nic"
    )
    gpu_dev = next((d for d in devices if d.get("kind") == "gpu"), None)
    gpu = GpuSpec(mode="vgpu", mdev_type=gpu_dev.get("vgpu", "")) if gpu_dev else None
    return VMInfo(
        name=props.get("name", ""),
        uuid=props.get("config.instanceUuid") or props.get("config.uuid") or "",
        power_state=POWER.get(str(props.get("runtime.powerState")), PowerState.UNKNOWN),
        vcpus=int(props.get("config.hardware.numCPU") or 0),
        memory_mib=int(props.get("config.hardware.memoryMB") or 0),
        disks=tuple(disk_info(d) for d in devices if d.get("kind") == "disk"),
        nics=nics,
        gpu=gpu,
        template=_as_bool(props.get("config.template")),
        guest_ip=props.get("guest.ipAddress") or "",
        host=hosts.get(props.get("runtime.host") or "", ""),
        description=props.get("config.annotation") or "",
        ref=moid,
    )

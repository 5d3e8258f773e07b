"""Device changes for ReconfigVM: new thin disks on the first SCSI controller, vGPUs, removals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyVmomi import vim

from ..base import GIB, DriverError, ErrorCode, GpuSpec

Operation = vim.vm.device.VirtualDeviceSpec.Operation
FileOperation = vim.vm.device.VirtualDeviceSpec.FileOperation


def disks(devices: list) -> list:
    return [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]


def gpus(devices: list) -> list:
    return [d for d in devices if isinstance(d, vim.vm.device.VirtualPCIPassthrough)]


def backing_network_key(backing: Any) -> str:
    """What a NIC's backing connects to, comparable across standard networks and DV portgroups."""
    port = getattr(backing, "port", None)
    if port is not None:
        return f"dvpg:{port.portgroupKey}"
    return f"net:{getattr(backing, 'deviceName', '')}"


def removal(device: Any, *, destroy_file: bool = False) -> Any:
    change = vim.vm.device.VirtualDeviceSpec(operation=Operation.remove, device=device)
    if destroy_file:
        change.fileOperation = FileOperation.destroy
    return change


def vgpu_addition(mdev_type: str) -> Any:
    backing = vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo(vgpu=mdev_type)
    return vim.vm.device.VirtualDeviceSpec(
        operation=Operation.add, device=vim.vm.device.VirtualPCIPassthrough(key=-200, backing=backing)
    )


def gpu_changes(devices: list, gpu: GpuSpec | None) -> list:
    """Changes that leave the VM with exactly ``gpu``'s vGPU profile (``gpu`` None: no GPU)."""
    current = gpus(devices)
    kept = [d for d in current if gpu is not None and getattr(d.backing, "vgpu", "") == gpu.mdev_type][:1]
    changes = [removal(dev) for dev in current if dev not in kept]
    if gpu is not None and not kept:
        changes.append(vgpu_addition(gpu.mdev_type))
    return changes


def new_disk(devices: list, size_gib: int, datastore: str, offset: int = 0, pending: Iterable = ()) -> Any:
    """A thin disk of ``size_gib`` on the first SCSI controller's first free unit (``pending`` changes count)."""
    if size_gib < 1:
        raise DriverError("a data disk needs at least 1 GiB", permanent=True, code=ErrorCode.INVALID_SPEC)
    controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
    if not controllers:
        raise DriverError("the VM has no SCSI controller for a new disk", permanent=True, code=ErrorCode.INVALID_SPEC)
    controller = controllers[0]
    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
    used |= {c.device.unitNumber for c in pending if getattr(c.device, "controllerKey", None) == controller.key}
    used.add(7)  # the controller's own unit
    unit = next((u for u in range(16) if u not in used), None)
    if unit is None:
        raise DriverError("no free SCSI unit for a new disk", permanent=True, code=ErrorCode.INVALID_SPEC)
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        diskMode="persistent", thinProvisioned=True, fileName=f"[{datastore}]" if datastore else ""
    )
    disk = vim.vm.device.VirtualDisk(
        key=-1 - offset,
        controllerKey=controller.key,
        unitNumber=unit,
        capacityInKB=size_gib * GIB // 1024,
        capacityInBytes=size_gib * GIB,
        backing=backing,
    )
    return vim.vm.device.VirtualDeviceSpec(operation=Operation.add, fileOperation=FileOperation.create, device=disk)

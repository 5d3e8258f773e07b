"""A VM's data disks: thin disks added to its first SCSI controller, removed with their files."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from ..base import DiskInfo, DriverError, ErrorCode
from . import devices as dv
from .inventory import Inventory
from .vminfo import disk_info_of


class Disks(Inventory):
    def attach_disk(self, name: str, size_gib: int, *, pool: str = "") -> DiskInfo:
        """A new thin disk on the VM's first SCSI controller; ``pool`` names a datastore."""
        what = f"cannot attach a disk to VM {name!r}"

        def attach(si: Any) -> DiskInfo:
            ref = self._vm_ref(si, name)
            change = dv.new_disk(self._devices(si, ref), size_gib, pool)
            self._wait(si, ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])), what)
            for dev in dv.disks(self._devices(si, ref)):
                if dev.controllerKey == change.device.controllerKey and dev.unitNumber == change.device.unitNumber:
                    return disk_info_of(dev)
            raise DriverError(f"the new disk of VM {name!r} did not appear", permanent=False, code=ErrorCode.ERROR)

        return self._call(what, attach)

    def detach_disk(self, name: str, target: str, *, delete_volume: bool = True) -> None:
        """Remove a data disk (``target`` is its device key or label); its file goes too by default."""
        what = f"cannot detach disk {target!r} from VM {name!r}"

        def detach(si: Any) -> None:
            ref = self._vm_ref(si, name)
            disks = dv.disks(self._devices(si, ref))
            disk = next((d for d in disks if str(d.key) == target or d.deviceInfo.label == target), None)
            if disk is None:
                raise DriverError(f"VM {name!r} has no disk {target!r}", permanent=True, code=ErrorCode.NOT_FOUND)
            if disk is disks[0]:
                raise DriverError("the system disk cannot be detached", permanent=True, code=ErrorCode.INVALID_SPEC)
            change = dv.removal(disk, destroy_file=delete_volume)
            self._wait(si, ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])), what)

        self._call(what, detach)

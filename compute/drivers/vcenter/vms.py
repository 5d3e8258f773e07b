"""Creating VMs by cloning (a template or a VM), resizing and deleting them; a retry finds its own work done.

The clone is marked with a fingerprint of its spec (``SPEC_KEY`` in extraConfig), so a
retried create recognises its own half-done work and a different VM of that name is EXISTS.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from ..base import DriverError, ErrorCode, GpuSpec, NicSpec, VMInfo, VMSpec, unsupported
from ..xml import spec_fingerprint
from . import devices as dv
from .inventory import Inventory

# Marks the VMs this driver cloned, so a retried create recognises its own half-done work.
SPEC_KEY = "campuscloud.spec"

_HARDWARE = ["config.hardware.numCPU", "config.hardware.memoryMB", "config.hardware.device", "config.annotation"]


def _refuse_passthrough(gpu: GpuSpec | None) -> None:
    if gpu is not None and gpu.mode == "passthrough":
        raise unsupported("GPU passthrough by PCI address", "the vCenter driver (use a vGPU profile)")


class Vms(Inventory):
    def create_vm(self, spec: VMSpec, *, start: bool = True) -> VMInfo:
        if not spec.template:
            raise DriverError("a vCenter VM needs a template to clone", permanent=True, code=ErrorCode.INVALID_SPEC)
        return self._clone(spec.template, spec, start=start)

    def clone_vm(self, source: str, spec: VMSpec, *, start: bool = True) -> VMInfo:
        """A new VM ``spec.name`` cloned from the VM ``source`` itself (its disks as they are now)."""
        return self._clone(source, spec, start=start)

    def _clone(self, source: str, spec: VMSpec, *, start: bool) -> VMInfo:
        """CloneVM_Task from ``source`` (a template or a VM), then ReconfigVM for what vcsim ignores in a clone spec."""
        _refuse_passthrough(spec.gpu)

        def create(si: Any) -> VMInfo:
            ref = self._existing(si, spec)
            if ref is None:
                template = self._vm_ref(si, source)
                folder, pool, datastore = self._placement(si, spec, template)
                config = vim.vm.ConfigSpec(
                    annotation=spec.description,
                    extraConfig=[vim.option.OptionValue(key=SPEC_KEY, value=spec_fingerprint(spec))],
                )
                clone = vim.vm.CloneSpec(
                    location=vim.vm.RelocateSpec(pool=pool, datastore=datastore),
                    powerOn=False,
                    template=False,
                    config=config,
                )
                task = template.CloneVM_Task(folder=folder, name=spec.name, spec=clone)
                ref = self._wait(si, task, f"cannot clone {source!r} to {spec.name!r}", result=True)
                self._vm_refs[spec.name] = ref
            self._apply_hardware(si, ref, spec)
            state = self._props(si, ref, ["runtime.powerState"]).get("runtime.powerState")
            if start and state != "poweredOn":
                self._wait(si, ref.PowerOnVM_Task(), f"cannot start VM {spec.name!r}")
            return self._vm_info(si, ref)

        return self._call(f"cannot create VM {spec.name!r}", create)

    def _existing(self, si: Any, spec: VMSpec) -> Any:
        """The VM already cloned from this very spec, None if the name is free; else EXISTS."""
        ref = self._find_vm_ref(si, spec.name)
        if ref is None:
            return None
        extra = self._props(si, ref, ["config.extraConfig"]).get("config.extraConfig") or []
        if not any(o.key == SPEC_KEY and o.value == spec_fingerprint(spec) for o in extra):
            # vcsim would happily clone a second VM with this name; real vCenters refuse per folder.
            raise DriverError(
                f"a different VM named {spec.name!r} already exists", permanent=True, code=ErrorCode.EXISTS
            )
        return ref

    def _placement(self, si: Any, spec: VMSpec, template: Any) -> tuple[Any, Any, Any]:
        """(folder, resource pool, datastore or None) for a clone of ``template``."""
        settings = self._settings
        pool_name = spec.resource_pool or settings.resource_pool
        if pool_name:
            pool = self._find(si, vim.ResourcePool, pool_name, "resource pool")
        elif settings.cluster:
            pool = self._find(si, vim.ClusterComputeResource, settings.cluster, "cluster").resourcePool
        else:
            pool = self._props(si, template, ["resourcePool"]).get("resourcePool")
            if pool is None:
                pool = self._first_root_pool(si)
        folder_name = spec.folder or settings.folder
        if folder_name:
            folder = self._find(si, vim.Folder, folder_name, "folder")
        else:
            folder = self._props(si, template, ["parent"]).get("parent")
        datastore_name = spec.datastore or settings.datastore
        datastore = self._find(si, vim.Datastore, datastore_name, "datastore") if datastore_name else None
        return folder, pool, datastore

    def _first_root_pool(self, si: Any) -> Any:
        """A template has no pool of its own: the first cluster's (else host's) root pool."""
        rows = self._retrieve(si, [vim.ComputeResource], {vim.ComputeResource: ["name", "resourcePool"]})
        clusters = [p for o, p in rows if isinstance(o, vim.ClusterComputeResource)] or [p for _o, p in rows]
        if not clusters:
            raise DriverError("no resource pool to clone into", permanent=True, code=ErrorCode.INVALID_SPEC)
        return clusters[0]["resourcePool"]

    def _apply_hardware(self, si: Any, ref: Any, spec: VMSpec) -> None:
        """CPU, memory, notes, NICs, data disks and vGPU by ReconfigVM: vcsim ignores them in a clone spec."""
        props = self._props(si, ref, _HARDWARE)
        devices = props.get("config.hardware.device", [])
        changes = self._nic_changes(si, devices, spec.nics)
        if len(dv.disks(devices)) <= 1:  # data disks not added yet (a retry finds them there)
            for index, disk in enumerate(spec.data_disks):
                changes.append(dv.new_disk(devices, disk.size_gib, disk.pool, index, changes))
        if spec.gpu is not None and not dv.gpus(devices):
            changes.append(dv.vgpu_addition(spec.gpu.mdev_type))
        config = vim.vm.ConfigSpec(deviceChange=changes)
        dirty = bool(changes)
        if props.get("config.hardware.numCPU") != spec.vcpus:
            config.numCPUs, dirty = spec.vcpus, True
        if props.get("config.hardware.memoryMB") != spec.memory_mib:
            config.memoryMB, dirty = spec.memory_mib, True
        if (props.get("config.annotation") or "") != spec.description:
            config.annotation, dirty = spec.description, True
        if dirty:
            self._wait(si, ref.ReconfigVM_Task(spec=config), f"cannot configure VM {spec.name!r}")

    def _nic_changes(self, si: Any, devices: list, nics: tuple[NicSpec, ...]) -> list:
        """Edits of the clone's NICs, in order, to the spec's networks and MACs; NICs it lacks are added."""
        present = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        changes = []
        for index, nic_spec in enumerate(nics):
            backing = self._nic_backing(si, nic_spec.network)
            if index < len(present):
                nic = present[index]
                if dv.backing_network_key(nic.backing) == dv.backing_network_key(backing) and (
                    not nic_spec.mac or nic.macAddress == nic_spec.mac
                ):
                    continue
                operation = dv.Operation.edit
            else:
                nic = vim.vm.device.VirtualVmxnet3(key=-100 - index)
                operation = dv.Operation.add
            nic.backing = backing
            if nic_spec.mac:
                nic.addressType = "manual"
                nic.macAddress = nic_spec.mac
            changes.append(vim.vm.device.VirtualDeviceSpec(operation=operation, device=nic))
        return changes

    def _nic_backing(self, si: Any, network: str) -> Any:
        for obj, props in self._retrieve(
            si, [vim.Network], {vim.Network: ["name"], vim.dvs.DistributedVirtualPortgroup: ["name", "key"]}
        ):
            if props.get("name") != network:
                continue
            if isinstance(obj, vim.dvs.DistributedVirtualPortgroup):
                switch = self._props(si, obj, ["config.distributedVirtualSwitch"])["config.distributedVirtualSwitch"]
                uuid = self._props(si, switch, ["uuid"])["uuid"]
                port = vim.dvs.PortConnection(portgroupKey=props["key"], switchUuid=uuid)
                return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
            return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network, network=obj)
        raise DriverError(f"network {network!r} not found", permanent=True, code=ErrorCode.NOT_FOUND)

    def resize(self, name: str, *, vcpus: int, memory_mib: int, gpu: GpuSpec | None = None) -> VMInfo:
        """ReconfigVM a powered-off VM: CPU, memory and its vGPU (added, changed or removed)."""
        _refuse_passthrough(gpu)

        def run(si: Any) -> VMInfo:
            ref = self._vm_ref(si, name)
            props = self._props(si, ref, ["runtime.powerState", "config.hardware.device"])
            if props.get("runtime.powerState") != "poweredOff":
                raise DriverError(
                    f"VM {name!r} must be powered off to change its size", permanent=True, code=ErrorCode.INVALID_STATE
                )
            changes = dv.gpu_changes(props.get("config.hardware.device", []), gpu)
            config = vim.vm.ConfigSpec(numCPUs=vcpus, memoryMB=memory_mib, deviceChange=changes)
            self._wait(si, ref.ReconfigVM_Task(spec=config), f"cannot resize VM {name!r}")
            return self._vm_info(si, ref)

        return self._call(f"cannot resize VM {name!r}", run)

    def delete_vm(self, name: str) -> None:
        """Power off and destroy (disks included). A VM already gone is not an error."""

        def delete(si: Any) -> None:
            ref = self._find_vm_ref(si, name)
            if ref is None:
                return
            if self._props(si, ref, ["runtime.powerState"]).get("runtime.powerState") != "poweredOff":
                try:
                    self._wait(si, ref.PowerOffVM_Task(), f"cannot power off VM {name!r}")
                except DriverError as exc:
                    if exc.code != ErrorCode.INVALID_STATE:  # powered off meanwhile
                        raise
            self._wait(si, ref.Destroy_Task(), f"cannot destroy VM {name!r}")
            self._vm_refs.pop(name, None)

        self._call(f"cannot delete VM {name!r}", delete)

"""Reading the inventory: host capacity, every VM in one PropertyCollector call, one VM by name.

The bulk reply (list_vms) is parsed with ElementTree because pyVmomi's own SOAP deserializer
takes seconds on a thousand VMs' device lists.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from pyVmomi import vim, vmodl

from ..base import DriverError, ErrorCode, HostInfo, VMInfo
from .session import PC, Session
from .vminfo import NS, VM_PROPERTIES, props_from_objects, text, value_from_xml, vm_info

_INVENTORY_PROPS = {
    vim.VirtualMachine: VM_PROPERTIES,
    vim.Network: ["name"],
    vim.dvs.DistributedVirtualPortgroup: ["name", "key"],
    vim.HostSystem: ["name"],
}
_HOST_PROPS = [
    "summary.hardware.numCpuThreads",
    "summary.hardware.memorySize",
    "summary.quickStats.overallMemoryUsage",
    "runtime.connectionState",
]


def _infos_from_rows(rows: list) -> list[VMInfo]:
    """VMInfo of every VM among (type, moid, props) rows, naming networks and hosts from the same rows."""
    portgroups = {}
    hosts = {}
    for kind, moid, props in rows:
        if kind == "HostSystem":
            hosts[moid] = props.get("name", "")
        elif kind in ("Network", "DistributedVirtualPortgroup", "OpaqueNetwork") and props.get("key"):
            portgroups[props["key"]] = props.get("name", "")
    return [
        vm_info(moid, props, portgroups, hosts)
        for kind, moid, props in rows
        if kind == "VirtualMachine" and props.get("name")
    ]


def _rows_from_xml(returnval: ET.Element) -> list:
    rows = []
    for obj in returnval.findall(f"{NS}objects"):
        ref = obj.find(f"{NS}obj")
        values = {text(p, f"{NS}name"): value_from_xml(p.find(f"{NS}val")) for p in obj.findall(f"{NS}propSet")}
        rows.append((ref.get("type", ""), ref.text or "", values))
    return rows


class Inventory(Session):
    _vm_refs: dict[str, Any]

    def host_info(self) -> HostInfo:
        def read(si: Any) -> HostInfo:
            cluster = self._settings.cluster
            root = self._find(si, vim.ClusterComputeResource, cluster, "cluster") if cluster else None
            rows = self._retrieve(si, [vim.HostSystem], {vim.HostSystem: _HOST_PROPS}, root)
            rows = [p for _o, p in rows if p.get("runtime.connectionState", "connected") == "connected"]
            memory = sum(p.get("summary.hardware.memorySize", 0) for p in rows) // (1024**2)
            used = sum(p.get("summary.quickStats.overallMemoryUsage", 0) or 0 for p in rows)
            return HostInfo(
                name=cluster or self._host,
                cpus=sum(p.get("summary.hardware.numCpuThreads", 0) for p in rows),
                memory_mib=memory,
                free_memory_mib=max(memory - used, 0),
                hypervisor=si.content.about.fullName,
                hosts=len(rows),
            )

        return self._call("cannot read host capacity", read)

    def _inventory(self, si: Any) -> list[VMInfo]:
        types = [vim.VirtualMachine, vim.Network, vim.HostSystem]
        if self._settings.fast_inventory:
            rows = self._retrieve_fast(si, types, _INVENTORY_PROPS)
            if rows is not None:
                return _infos_from_rows(rows)
        rows = [
            (obj._wsdlName, obj._moId, props_from_objects(props))
            for obj, props in self._retrieve(si, types, _INVENTORY_PROPS)
        ]
        return _infos_from_rows(rows)

    def _retrieve_fast(self, si: Any, types: list[type], props: dict[type, list[str]]) -> list | None:
        """RetrievePropertiesEx serialized by pyVmomi, sent on its connection, parsed by ElementTree.

        Returns None (the caller then takes pyVmomi's path) on anything but a plain 200 reply,
        so faults such as an expired session still surface as pyVmomi's typed exceptions.
        """
        stub = si._stub
        pc = si.content.propertyCollector
        view, spec = self._view_spec(si, types, props)
        try:
            method, args = "RetrievePropertiesEx", [[spec], PC.RetrieveOptions()]
            rows: list = []
            while True:
                body = self._post(stub, pc, method, args)
                if body is None:
                    return None
                returnval = ET.fromstring(body).find(f".//{NS}returnval")
                if returnval is None:
                    return rows
                rows.extend(_rows_from_xml(returnval))
                token = text(returnval, f"{NS}token")
                if not token:
                    return rows
                method, args = "ContinueRetrievePropertiesEx", [token]
        finally:
            view.DestroyView()

    @staticmethod
    def _post(stub: Any, pc: Any, method: str, args: list) -> bytes | None:
        """One PropertyCollector call on pyVmomi's connection; the raw reply body, None unless a plain 200."""
        request = stub.SerializeRequest(pc, pc._GetMethodInfo(method), args)
        headers = {"Cookie": stub.cookie, "SOAPAction": stub.versionId, "Content-Type": "text/xml; charset=UTF-8"}
        conn = stub.GetConnection()
        try:
            conn.request("POST", stub.path, request, headers)
            response = conn.getresponse()
            body = response.read()
        except Exception:
            conn.close()
            raise
        stub.ReturnConnection(conn)
        return body if response.status == 200 else None

    def list_vms(self) -> list[VMInfo]:
        """Every VM (templates excluded) in one PropertyCollector round trip."""
        vms = self._call("cannot list VMs", self._inventory)
        return [vm for vm in vms if not vm.template]

    def list_templates(self) -> list[VMInfo]:
        vms = self._call("cannot list templates", self._inventory)
        return [vm for vm in vms if vm.template]

    def _vm_ref(self, si: Any, name: str) -> Any:
        """The VM called ``name``: a cached reference, checked, else one listing of names."""
        ref = self._vm_refs.get(name)
        if ref is not None:
            try:
                if self._props(si, ref, ["name"]).get("name") == name:
                    return ref
            except vmodl.fault.ManagedObjectNotFound:
                pass
        self._vm_refs = {
            props["name"]: obj
            for obj, props in self._retrieve(si, [vim.VirtualMachine], {vim.VirtualMachine: ["name"]})
            if "name" in props
        }
        ref = self._vm_refs.get(name)
        if ref is None:
            raise DriverError(f"VM {name!r} not found", permanent=True, code=ErrorCode.NOT_FOUND)
        return ref

    def _find_vm_ref(self, si: Any, name: str) -> Any:
        """The VM called ``name``, None if there is none."""
        try:
            return self._vm_ref(si, name)
        except DriverError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise

    def _vm_info(self, si: Any, ref: Any) -> VMInfo:
        props = props_from_objects(self._props(si, ref, VM_PROPERTIES))
        portgroups = {}
        for dev in props.get("config.hardware.device", []):
            key = dev.get("portgroup")
            if key and key not in portgroups:
                portgroups[key] = self._portgroup_name(si, key)
        host = props.get("runtime.host")
        hosts = {host: self._props(si, vim.HostSystem(host, si._stub), ["name"]).get("name", "")} if host else {}
        return vm_info(ref._moId, props, portgroups, hosts)

    def _portgroup_name(self, si: Any, key: str) -> str:
        for _obj, props in self._retrieve(
            si, [vim.dvs.DistributedVirtualPortgroup], {vim.dvs.DistributedVirtualPortgroup: ["name", "key"]}
        ):
            if props.get("key") == key:
                return props.get("name", "")
        return key

    def get_vm(self, name: str) -> VMInfo:
        return self._call(f"cannot read VM {name!r}", lambda si: self._vm_info(si, self._vm_ref(si, name)))

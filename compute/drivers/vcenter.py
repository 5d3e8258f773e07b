"""vCenter driver (pyVmomi): desktops as VMs cloned from templates, one reused session per endpoint.

VMs are addressed by name, as the portal knows them. The bulk inventory (list_vms) is one
PropertyCollector call; its reply is parsed with ElementTree because pyVmomi's own SOAP
deserializer takes seconds on a thousand VMs' device lists.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from .base import (
    GIB,
    ConsoleAddress,
    DhcpHost,
    DiskInfo,
    DriverError,
    ErrorCode,
    ForwardSpec,
    GpuSpec,
    HostInfo,
    NetworkSpec,
    NicInfo,
    NwFilterSpec,
    PowerState,
    SnapshotInfo,
    VMInfo,
    VMSpec,
    VolumeInfo,
    unsupported,
)
from .xml import spec_fingerprint

T = TypeVar("T")
PC = vmodl.query.PropertyCollector

# Marks the VMs this driver cloned, so a retried create recognises its own half-done work.
SPEC_KEY = "campuscloud.spec"

_POWER = {
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
_NS = "{urn:vim25}"


def map_fault(exc: BaseException, what: str) -> DriverError:
    """One DriverError for a vSphere fault or a transport error."""
    detail = getattr(exc, "msg", "") or str(exc) or type(exc).__name__
    if isinstance(exc, vim.fault.InvalidPowerState):
        detail = f"the VM is {exc.existingState}"
    message = f"{what}: {type(exc).__name__}: {detail}"

    def err(permanent: bool, code: ErrorCode) -> DriverError:
        return DriverError(message, permanent=permanent, code=code)

    if isinstance(exc, DriverError):
        return exc
    if isinstance(exc, vim.fault.InvalidLogin | vim.fault.NotAuthenticated | vim.fault.NoPermission):
        return err(True, ErrorCode.AUTH)
    if isinstance(exc, vim.fault.TaskInProgress):
        return err(False, ErrorCode.BUSY)
    if isinstance(exc, vim.fault.Timedout):
        return err(False, ErrorCode.TIMEOUT)
    if isinstance(exc, vim.fault.ToolsUnavailable):
        return err(True, ErrorCode.INVALID_STATE)
    if isinstance(exc, vim.fault.InvalidState):  # InvalidPowerState included
        return err(True, ErrorCode.INVALID_STATE)
    if isinstance(exc, vim.fault.NotFound | vmodl.fault.ManagedObjectNotFound):
        return err(True, ErrorCode.NOT_FOUND)
    if isinstance(exc, vim.fault.DuplicateName | vim.fault.AlreadyExists):
        return err(True, ErrorCode.EXISTS)
    if isinstance(exc, vim.fault.InsufficientResourcesFault):
        return err(True, ErrorCode.INSUFFICIENT_RESOURCES)
    if isinstance(exc, vim.fault.HostConnectFault | vmodl.fault.HostCommunication | vmodl.fault.RequestCanceled):
        return err(False, ErrorCode.UNREACHABLE)
    if isinstance(exc, vmodl.fault.NotSupported | vmodl.fault.NotImplemented | vmodl.fault.MethodNotFound):
        return err(True, ErrorCode.UNSUPPORTED)
    if isinstance(
        exc,
        vmodl.fault.InvalidArgument
        | vmodl.fault.InvalidRequest
        | vmodl.fault.InvalidType
        | vim.fault.InvalidDeviceSpec
        | vim.fault.VmConfigFault,
    ):
        return err(True, ErrorCode.INVALID_SPEC)
    if isinstance(exc, vmodl.fault.SystemError):
        # vpxd's catch-all: often a passing backend problem, so worth a retry.
        return err(False, ErrorCode.ERROR)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DriverError(
            f"{what}: the server's TLS certificate is not trusted ({detail}); "
            "set verify_ssl=False for a self-signed one",
            permanent=True,
            code=ErrorCode.AUTH,
        )
    if isinstance(exc, ssl.SSLError):
        # A TLS handshake that fails on protocol grounds (e.g. https to an http port) will not heal.
        return err(True, ErrorCode.INVALID_SPEC)
    if isinstance(exc, TimeoutError):
        return err(False, ErrorCode.TIMEOUT)
    if isinstance(exc, OSError | http.client.HTTPException | ET.ParseError):
        return err(False, ErrorCode.UNREACHABLE)
    return err(True, ErrorCode.ERROR)


def _text(el: ET.Element | None, path: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(path)
    return found.text or default if found is not None else default


def _xsi(el: ET.Element) -> str:
    return el.get(_XSI_TYPE, "").split(":")[-1]


class VCenterDriver:
    """One vCenter (or ESXi) endpoint; the session is opened on first use and renewed when it expires."""

    kind = "vcenter"

    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        verify_ssl: bool = True,
        ca_file: str = "",
        datacenter: str = "",
        cluster: str = "",
        resource_pool: str = "",
        folder: str = "",
        datastore: str = "",
        task_timeout: float = 600.0,
        connect_timeout: float = 15.0,
        fast_inventory: bool = True,
        **_options: Any,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DriverError(
                f"a vCenter URL looks like https://vcenter.example/sdk, not {url!r}",
                permanent=True,
                code=ErrorCode.INVALID_SPEC,
            )
        self.url = url
        self._protocol = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = parts.path or "/sdk"
        self._username = username
        self._password = password
        self._verify_ssl = verify_ssl
        self._ca_file = ca_file
        self._datacenter = datacenter
        self._cluster = cluster
        self._resource_pool = resource_pool
        self._folder = folder
        self._datastore = datastore
        self._task_timeout = task_timeout
        self._connect_timeout = connect_timeout
        self._fast_inventory = fast_inventory
        self._lock = threading.Lock()
        self._si: Any = None
        self._vm_refs: dict[str, vim.VirtualMachine] = {}

    # ---- session ----------------------------------------------------------------------

    def _connect(self) -> Any:
        kwargs: dict[str, Any] = {}
        if self._protocol == "https":
            if self._verify_ssl:
                # An explicit context: pyVmomi skips verification for localhost when given none.
                kwargs["sslContext"] = ssl.create_default_context(cafile=self._ca_file or None)
            else:
                kwargs["disableSslCertValidation"] = True
        try:
            return SmartConnect(
                protocol=self._protocol,
                host=self._host,
                port=self._port,
                path=self._path,
                user=self._username,
                pwd=self._password,
                httpConnectionTimeout=self._connect_timeout,
                **kwargs,
            )
        except vim.fault.InvalidLogin as exc:
            raise DriverError(
                f"vCenter {self.url} refused the credentials of {self._username!r}",
                permanent=True,
                code=ErrorCode.AUTH,
            ) from exc
        except Exception as exc:
            err = map_fault(exc, f"cannot connect to {self.url}")
            if err.code == ErrorCode.ERROR:
                # SmartConnect says "is down or is not a VIM server" for both; a TCP probe tells which.
                listening = self._port_open()
                err = DriverError(
                    err.message,
                    permanent=listening,
                    code=ErrorCode.INVALID_SPEC if listening else ErrorCode.UNREACHABLE,
                )
            raise err from exc

    def _port_open(self) -> bool:
        try:
            socket.create_connection((self._host, self._port), timeout=self._connect_timeout).close()
            return True
        except OSError:
            return False

    def _session(self, stale: Any = None) -> Any:
        with self._lock:
            if self._si is None or self._si is stale:
                self._si = self._connect()
            return self._si

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(si)``; log in again once if the session expired; map every error."""
        si = self._session()
        try:
            try:
                return fn(si)
            except vim.fault.NotAuthenticated:
                si = self._session(stale=si)
                return fn(si)
        except DriverError:
            raise
        except Exception as exc:
            err = map_fault(exc, what)
            if err.code == ErrorCode.UNREACHABLE:
                with self._lock:
                    if self._si is si:
                        self._si = None
            raise err from exc

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
        if si is not None:
            # Logging out of a dead session must not fail the caller.
            with contextlib.suppress(Exception):
                Disconnect(si)

    # ---- property collector helpers -----------------------------------------------------

    @staticmethod
    def _view_spec(si: Any, types: list[type], props: dict[type, list[str]], root: Any = None) -> tuple[Any, Any]:
        content = si.content
        view = content.viewManager.CreateContainerView(root or content.rootFolder, types, True)
        traversal = PC.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[PC.PropertySpec(type=t, pathSet=paths) for t, paths in props.items()],
        )
        return view, spec

    def _retrieve(self, si: Any, types: list[type], props: dict[type, list[str]], root: Any = None) -> list:
        """[(obj, {prop: value})] for every object of ``types`` under ``root``, paging through tokens."""
        view, spec = self._view_spec(si, types, props, root)
        pc = si.content.propertyCollector
        try:
            result = pc.RetrievePropertiesEx([spec], PC.RetrieveOptions())
            rows = []
            while result is not None:
                rows.extend((o.obj, {p.name: p.val for p in o.propSet}) for o in result.objects)
                result = pc.ContinueRetrievePropertiesEx(result.token) if result.token else None
            return rows
        finally:
            view.DestroyView()

    @staticmethod
    def _props(si: Any, obj: Any, paths: list[str]) -> dict[str, Any]:
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
            propSet=[PC.PropertySpec(type=type(obj), pathSet=paths)],
        )
        result = si.content.propertyCollector.RetrieveContents([spec])
        return {p.name: p.val for o in result for p in o.propSet}

    def _find(self, si: Any, vimtype: type, name: str, what: str) -> Any:
        for obj, props in self._retrieve(si, [vimtype], {vimtype: ["name"]}):
            if props.get("name") == name:
                return obj
        raise DriverError(f"{what} {name!r} not found", permanent=True, code=ErrorCode.NOT_FOUND)

    # ---- tasks ------------------------------------------------------------------------

    def _wait(self, si: Any, task: Any, what: str, *, result: bool = False) -> Any:
        """Wait for a task. Only info.state/error are read (and info.result when asked), since
        vcsim answers some tasks with a result type pyVmomi cannot deserialize."""
        deadline = time.monotonic() + self._task_timeout
        delay = 0.05
        paths = ["info.state", "info.error"] + (["info.result"] if result else [])
        while True:
            info = self._props(si, task, paths)
            state = info.get("info.state")
            if state == vim.TaskInfo.State.success:
                return info.get("info.result")
            if state == vim.TaskInfo.State.error:
                fault = info.get("info.error")
                if not isinstance(fault, BaseException):  # a LocalizedMethodFault left wrapped
                    fault = getattr(fault, "fault", None) or RuntimeError(
                        getattr(fault, "localizedMessage", "task failed")
                    )
                raise map_fault(fault, what)
            if time.monotonic() > deadline:
                raise DriverError(
                    f"{what}: task still {state} after {self._task_timeout:.0f} s",
                    permanent=False,
                    code=ErrorCode.TIMEOUT,
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # ---- host -------------------------------------------------------------------------

    def check(self) -> None:
        self._call(f"cannot reach {self.url}", lambda si: si.CurrentTime())

    def host_info(self) -> HostInfo:
        def read(si: Any) -> HostInfo:
            root = self._find(si, vim.ClusterComputeResource, self._cluster, "cluster") if self._cluster else None
            paths = [
                "summary.hardware.numCpuThreads",
                "summary.hardware.memorySize",
                "summary.quickStats.overallMemoryUsage",
                "runtime.connectionState",
            ]
            rows = self._retrieve(si, [vim.HostSystem], {vim.HostSystem: paths}, root)
            rows = [p for _o, p in rows if p.get("runtime.connectionState", "connected") == "connected"]
            memory = sum(p.get("summary.hardware.memorySize", 0) for p in rows) // (1024**2)
            used = sum(p.get("summary.quickStats.overallMemoryUsage", 0) or 0 for p in rows)
            about = si.content.about
            return HostInfo(
                name=self._cluster or self._host,
                cpus=sum(p.get("summary.hardware.numCpuThreads", 0) for p in rows),
                memory_mib=memory,
                free_memory_mib=max(memory - used, 0),
                hypervisor=about.fullName,
                hosts=len(rows),
            )

        return self._call("cannot read host capacity", read)

    # ---- inventory ----------------------------------------------------------------------

    def _inventory_props(self) -> dict[type, list[str]]:
        return {
            vim.VirtualMachine: VM_PROPERTIES,
            vim.Network: ["name"],
            vim.dvs.DistributedVirtualPortgroup: ["name", "key"],
            vim.HostSystem: ["name"],
        }

    def _inventory(self, si: Any) -> list[VMInfo]:
        types = [vim.VirtualMachine, vim.Network, vim.HostSystem]
        if self._fast_inventory:
            rows = self._retrieve_fast(si, types, self._inventory_props())
            if rows is not None:
                return self._infos_from_rows(rows)
        rows = [
            (obj._wsdlName, obj._moId, _props_from_objects(props))
            for obj, props in self._retrieve(si, types, self._inventory_props())
        ]
        return self._infos_from_rows(rows)

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
                returnval = ET.fromstring(body).find(f".//{_NS}returnval")
                if returnval is None:
                    return rows
                for obj in returnval.findall(f"{_NS}objects"):
                    ref = obj.find(f"{_NS}obj")
                    values = {
                        _text(p, f"{_NS}name"): _value_from_xml(p.find(f"{_NS}val"))
                        for p in obj.findall(f"{_NS}propSet")
                    }
                    rows.append((ref.get("type", ""), ref.text or "", values))
                token = _text(returnval, f"{_NS}token")
                if not token:
                    return rows
                method, args = "ContinueRetrievePropertiesEx", [token]
        finally:
            view.DestroyView()

    @staticmethod
    def _post(stub: Any, pc: Any, method: str, args: list) -> bytes | None:
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

    @staticmethod
    def _infos_from_rows(rows: list) -> list[VMInfo]:
        networks = {}
        portgroups = {}
        hosts = {}
        for kind, moid, props in rows:
            if kind == "HostSystem":
                hosts[moid] = props.get("name", "")
            elif kind in ("Network", "DistributedVirtualPortgroup", "OpaqueNetwork"):
                networks[moid] = props.get("name", "")
                if props.get("key"):
                    portgroups[props["key"]] = props.get("name", "")
        infos = []
        for kind, moid, props in rows:
            if kind == "VirtualMachine" and props.get("name"):
                infos.append(_vm_info(moid, props, portgroups, hosts))
        return infos

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

    def _vm_info(self, si: Any, ref: Any) -> VMInfo:
        props = _props_from_objects(self._props(si, ref, VM_PROPERTIES))
        portgroups = {}
        for dev in props.get("config.hardware.device", []):
            key = dev.get("portgroup")
            if key and key not in portgroups:
                portgroups[key] = self._portgroup_name(si, key)
        host = props.get("runtime.host")
        hosts = {host: self._props(si, vim.HostSystem(host, si._stub), ["name"]).get("name", "")} if host else {}
        return _vm_info(ref._moId, props, portgroups, hosts)

    def _portgroup_name(self, si: Any, key: str) -> str:
        for _obj, props in self._retrieve(
            si, [vim.dvs.DistributedVirtualPortgroup], {vim.dvs.DistributedVirtualPortgroup: ["name", "key"]}
        ):
            if props.get("key") == key:
                return props.get("name", "")
        return key

    def get_vm(self, name: str) -> VMInfo:
        return self._call(f"cannot read VM {name!r}", lambda si: self._vm_info(si, self._vm_ref(si, name)))

    # ---- create / delete ----------------------------------------------------------------

    def _placement(self, si: Any, spec: VMSpec, template: Any) -> tuple[Any, Any, Any]:
        """(folder, resource pool, datastore or None) for a clone of ``template``."""
        pool_name = spec.resource_pool or self._resource_pool
        if pool_name:
            pool = self._find(si, vim.ResourcePool, pool_name, "resource pool")
        elif self._cluster:
            pool = self._find(si, vim.ClusterComputeResource, self._cluster, "cluster").resourcePool
        else:
            pool = self._props(si, template, ["resourcePool"]).get("resourcePool")
            if pool is None:
                # A template has no pool of its own: take the first cluster's (else host's) root pool.
                rows = self._retrieve(si, [vim.ComputeResource], {vim.ComputeResource: ["name", "resourcePool"]})
                clusters = [p for o, p in rows if isinstance(o, vim.ClusterComputeResource)] or [p for _o, p in rows]
                if not clusters:
                    raise DriverError("no resource pool to clone into", permanent=True, code=ErrorCode.INVALID_SPEC)
                pool = clusters[0]["resourcePool"]
        folder_name = spec.folder or self._folder
        if folder_name:
            folder = self._find(si, vim.Folder, folder_name, "folder")
        else:
            folder = self._props(si, template, ["parent"]).get("parent")
        datastore_name = spec.datastore or self._datastore
        datastore = self._find(si, vim.Datastore, datastore_name, "datastore") if datastore_name else None
        return folder, pool, datastore

    def _existing(self, si: Any, spec: VMSpec) -> Any:
        try:
            ref = self._vm_ref(si, spec.name)
        except DriverError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise
        extra = self._props(si, ref, ["config.extraConfig"]).get("config.extraConfig") or []
        if not any(o.key == SPEC_KEY and o.value == spec_fingerprint(spec) for o in extra):
            # vcsim would happily clone a second VM with this name; real vCenters refuse per folder.
            raise DriverError(
                f"a different VM named {spec.name!r} already exists", permanent=True, code=ErrorCode.EXISTS
            )
        return ref

    def create_vm(self, spec: VMSpec, *, start: bool = True) -> VMInfo:
        if not spec.template:
            raise DriverError("a vCenter VM needs a template to clone", permanent=True, code=ErrorCode.INVALID_SPEC)
        return self._clone(spec.template, spec, start=start)

    def clone_vm(self, source: str, spec: VMSpec, *, start: bool = True) -> VMInfo:
        """A new VM ``spec.name`` cloned from the VM ``source`` itself (its disks as they are now)."""
        return self._clone(source, spec, start=start)

    def _clone(self, source: str, spec: VMSpec, *, start: bool) -> VMInfo:
        """CloneVM_Task from ``source`` (a template or a VM), then ReconfigVM for what vcsim ignores in a clone spec."""
        if spec.gpu is not None and spec.gpu.mode == "passthrough":
            raise unsupported("GPU passthrough by PCI address", "the vCenter driver (use a vGPU profile)")

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

    def _apply_hardware(self, si: Any, ref: Any, spec: VMSpec) -> None:
        """CPU, memory, notes, NICs, data disks and vGPU by ReconfigVM: vcsim ignores them in a clone spec."""
        props = self._props(
            si,
            ref,
            ["config.hardware.numCPU", "config.hardware.memoryMB", "config.hardware.device", "config.annotation"],
        )
        devices = props.get("config.hardware.device", [])
        changes = []
        nics = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        for index, nic_spec in enumerate(spec.nics):
            backing = self._nic_backing(si, nic_spec.network)
            if index < len(nics):
                nic = nics[index]
                if _backing_network_key(nic.backing) == _backing_network_key(backing) and (
                    not nic_spec.mac or nic.macAddress == nic_spec.mac
                ):
                    continue
                operation = vim.vm.device.VirtualDeviceSpec.Operation.edit
            else:
                nic = vim.vm.device.VirtualVmxnet3(key=-100 - index)
                operation = vim.vm.device.VirtualDeviceSpec.Operation.add
            nic.backing = backing
            if nic_spec.mac:
                nic.addressType = "manual"
                nic.macAddress = nic_spec.mac
            changes.append(vim.vm.device.VirtualDeviceSpec(operation=operation, device=nic))
        disks = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
        if len(disks) <= 1:  # data disks not added yet (a retry finds them there)
            for index, disk in enumerate(spec.data_disks):
                changes.append(self._new_disk_change(si, devices, disk.size_gib, disk.pool, index, changes))
        if spec.gpu is not None and not any(isinstance(d, vim.vm.device.VirtualPCIPassthrough) for d in devices):
            backing = vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo(vgpu=spec.gpu.mdev_type)
            changes.append(
                vim.vm.device.VirtualDeviceSpec(
                    operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
                    device=vim.vm.device.VirtualPCIPassthrough(key=-200, backing=backing),
                )
            )
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

    def _new_disk_change(
        self, si: Any, devices: list, size_gib: int, datastore: str, offset: int = 0, pending: Iterable = ()
    ) -> Any:
        if size_gib < 1:
            raise DriverError("a data disk needs at least 1 GiB", permanent=True, code=ErrorCode.INVALID_SPEC)
        controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
        if not controllers:
            raise DriverError(
                "the VM has no SCSI controller for a new disk", permanent=True, code=ErrorCode.INVALID_SPEC
            )
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
        return vim.vm.device.VirtualDeviceSpec(
            operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
            fileOperation=vim.vm.device.VirtualDeviceSpec.FileOperation.create,
            device=disk,
        )

    def delete_vm(self, name: str) -> None:
        """Power off and destroy (disks included). A VM already gone is not an error."""

        def delete(si: Any) -> None:
            try:
                ref = self._vm_ref(si, name)
            except DriverError as exc:
                if exc.code == ErrorCode.NOT_FOUND:
                    return
                raise
            if self._props(si, ref, ["runtime.powerState"]).get("runtime.powerState") != "poweredOff":
                try:
                    self._wait(si, ref.PowerOffVM_Task(), f"cannot power off VM {name!r}")
                except DriverError as exc:
                    if exc.code != ErrorCode.INVALID_STATE:  # powered off meanwhile
                        raise
            self._wait(si, ref.Destroy_Task(), f"cannot destroy VM {name!r}")
            self._vm_refs.pop(name, None)

        self._call(f"cannot delete VM {name!r}", delete)

    # ---- power ------------------------------------------------------------------------

    def _power(self, name: str, what: str, method: str) -> None:
        def run(si: Any) -> None:
            ref = self._vm_ref(si, name)
            self._wait(si, getattr(ref, method)(), f"cannot {what} VM {name!r}")

        self._call(f"cannot {what} VM {name!r}", run)

    def start(self, name: str) -> None:
        self._power(name, "start", "PowerOnVM_Task")

    def shutdown(self, name: str, *, force: bool = False) -> None:
        """Guest shutdown through VMware Tools (returns at once; poll get_vm), or power off with force."""
        if force:
            self._power(name, "power off", "PowerOffVM_Task")
            return
        self._call(f"cannot shut down VM {name!r}", lambda si: self._vm_ref(si, name).ShutdownGuest())

    def reboot(self, name: str) -> None:
        """A hard reset: unlike a guest reboot it needs no VMware Tools in the guest."""
        self._power(name, "reset", "ResetVM_Task")

    def suspend(self, name: str) -> None:
        self._power(name, "suspend", "SuspendVM_Task")

    def resume(self, name: str) -> None:
        self._power(name, "resume", "PowerOnVM_Task")

    def console_address(self, name: str) -> ConsoleAddress:
        def ticket(si: Any) -> ConsoleAddress:
            ref = self._vm_ref(si, name)
            try:
                t = ref.AcquireTicket(ticketType="webmks")
            except (vmodl.fault.NotSupported, vmodl.fault.NotImplemented, vmodl.fault.MethodNotFound) as exc:
                # vcsim implements no tickets at all (MethodNotFound); old ESXi lacks webmks.
                raise DriverError(
                    f"vCenter {self.url} cannot issue a WebMKS console ticket for VM {name!r}",
                    permanent=True,
                    code=ErrorCode.CONSOLE_UNSUPPORTED,
                ) from exc
            host, port = t.host or self._host, t.port or 443
            return ConsoleAddress(host=host, port=port, ticket=t.ticket, url=f"wss://{host}:{port}/ticket/{t.ticket}")

        return self._call(f"cannot open a console on VM {name!r}", ticket)

    # ---- snapshots --------------------------------------------------------------------

    @staticmethod
    def _walk(nodes: Iterable, parent: str = "") -> Iterable[tuple[Any, str]]:
        for node in nodes or []:
            yield node, parent
            yield from VCenterDriver._walk(node.childSnapshotList, node.name)

    def _snapshots(self, si: Any, ref: Any) -> tuple[list[tuple[Any, str]], Any]:
        info = self._props(si, ref, ["snapshot"]).get("snapshot")
        if info is None:
            return [], None
        return list(self._walk(info.rootSnapshotList)), info.currentSnapshot

    @staticmethod
    def _snapshot_info(node: Any, parent: str, current: Any) -> SnapshotInfo:
        return SnapshotInfo(
            name=node.name,
            created_at=node.createTime.astimezone(UTC) if node.createTime else None,
            description=node.description or "",
            parent=parent,
            current=current is not None and node.snapshot._moId == current._moId,
            power_state=_POWER.get(str(node.state), PowerState.UNKNOWN),
        )

    def _snapshot_node(self, si: Any, ref: Any, vm: str, snapshot: str) -> Any:
        nodes, _current = self._snapshots(si, ref)
        for node, _parent in nodes:
            if node.name == snapshot:
                return node
        raise DriverError(f"snapshot {snapshot!r} of VM {vm!r} not found", permanent=True, code=ErrorCode.NOT_FOUND)

    def snapshot_create(self, name: str, snapshot: str, description: str = "") -> SnapshotInfo:
        def create(si: Any) -> SnapshotInfo:
            ref = self._vm_ref(si, name)
            nodes, _ = self._snapshots(si, ref)
            if any(node.name == snapshot for node, _p in nodes):
                raise DriverError(
                    f"VM {name!r} already has a snapshot {snapshot!r}", permanent=True, code=ErrorCode.EXISTS
                )
            task = ref.CreateSnapshot_Task(name=snapshot, description=description, memory=False, quiesce=False)
            self._wait(si, task, f"cannot snapshot VM {name!r}")
            nodes, current = self._snapshots(si, ref)
            node, parent = next((n, p) for n, p in nodes if n.name == snapshot)
            return self._snapshot_info(node, parent, current)

        return self._call(f"cannot snapshot VM {name!r}", create)

    def snapshot_list(self, name: str) -> list[SnapshotInfo]:
        def read(si: Any) -> list[SnapshotInfo]:
            nodes, current = self._snapshots(si, self._vm_ref(si, name))
            return [self._snapshot_info(n, p, current) for n, p in nodes]

        return self._call(f"cannot list snapshots of VM {name!r}", read)

    def snapshot_revert(self, name: str, snapshot: str) -> None:
        def revert(si: Any) -> None:
            node = self._snapshot_node(si, self._vm_ref(si, name), name, snapshot)
            self._wait(si, node.snapshot.RevertToSnapshot_Task(), f"cannot revert VM {name!r} to {snapshot!r}")

        self._call(f"cannot revert VM {name!r} to {snapshot!r}", revert)

    def snapshot_delete(self, name: str, snapshot: str) -> None:
        def delete(si: Any) -> None:
            node = self._snapshot_node(si, self._vm_ref(si, name), name, snapshot)
            task = node.snapshot.RemoveSnapshot_Task(removeChildren=False)
            self._wait(si, task, f"cannot delete snapshot {snapshot!r} of VM {name!r}")

        self._call(f"cannot delete snapshot {snapshot!r} of VM {name!r}", delete)

    # ---- disks ------------------------------------------------------------------------

    def attach_disk(self, name: str, size_gib: int, *, pool: str = "") -> DiskInfo:
        """A new thin disk on the VM's first SCSI controller; ``pool`` names a datastore."""

        def attach(si: Any) -> DiskInfo:
            ref = self._vm_ref(si, name)
            devices = self._props(si, ref, ["config.hardware.device"]).get("config.hardware.device", [])
            change = self._new_disk_change(si, devices, size_gib, pool)
            task = ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change]))
            self._wait(si, task, f"cannot attach a disk to VM {name!r}")
            devices = self._props(si, ref, ["config.hardware.device"]).get("config.hardware.device", [])
            for dev in devices:
                if (
                    isinstance(dev, vim.vm.device.VirtualDisk)
                    and dev.controllerKey == change.device.controllerKey
                    and dev.unitNumber == change.device.unitNumber
                ):
                    return _disk_info(_device_dict(dev))
            raise DriverError(f"the new disk of VM {name!r} did not appear", permanent=False, code=ErrorCode.ERROR)

        return self._call(f"cannot attach a disk to VM {name!r}", attach)

    def detach_disk(self, name: str, target: str, *, delete_volume: bool = True) -> None:
        """Remove a data disk (``target`` is its device key or label); its file goes too by default."""

        def detach(si: Any) -> None:
            ref = self._vm_ref(si, name)
            devices = self._props(si, ref, ["config.hardware.device"]).get("config.hardware.device", [])
            disks = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
            disk = next((d for d in disks if str(d.key) == target or d.deviceInfo.label == target), None)
            if disk is None:
                raise DriverError(f"VM {name!r} has no disk {target!r}", permanent=True, code=ErrorCode.NOT_FOUND)
            if disk is disks[0]:
                raise DriverError("the system disk cannot be detached", permanent=True, code=ErrorCode.INVALID_SPEC)
            change = vim.vm.device.VirtualDeviceSpec(
                operation=vim.vm.device.VirtualDeviceSpec.Operation.remove, device=disk
            )
            if delete_volume:
                change.fileOperation = vim.vm.device.VirtualDeviceSpec.FileOperation.destroy
            task = ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change]))
            self._wait(si, task, f"cannot detach disk {target!r} from VM {name!r}")

        self._call(f"cannot detach disk {target!r} from VM {name!r}", detach)

    def reset_system_disk(self, name: str) -> None:
        raise unsupported("resetting a system disk", "the vCenter driver (delete and clone the VM again)")

    def resize(self, name: str, *, vcpus: int, memory_mib: int, gpu: GpuSpec | None = None) -> VMInfo:
        """ReconfigVM a powered-off VM: CPU, memory and its vGPU (added, changed or removed)."""
        if gpu is not None and gpu.mode == "passthrough":
            raise unsupported("GPU passthrough by PCI address", "the vCenter driver (use a vGPU profile)")

        def run(si: Any) -> VMInfo:
            ref = self._vm_ref(si, name)
            props = self._props(si, ref, ["runtime.powerState", "config.hardware.device"])
            if props.get("runtime.powerState") != "poweredOff":
                raise DriverError(
                    f"VM {name!r} must be powered off to change its size", permanent=True, code=ErrorCode.INVALID_STATE
                )
            changes = []
            current = [
                d for d in props.get("config.hardware.device", []) if isinstance(d, vim.vm.device.VirtualPCIPassthrough)
            ]
            kept = [d for d in current if gpu is not None and getattr(d.backing, "vgpu", "") == gpu.mdev_type][:1]
            for dev in current:
                if dev not in kept:
                    changes.append(
                        vim.vm.device.VirtualDeviceSpec(
                            operation=vim.vm.device.VirtualDeviceSpec.Operation.remove, device=dev
                        )
                    )
            if gpu is not None and not kept:
                backing = vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo(vgpu=gpu.mdev_type)
                changes.append(
                    vim.vm.device.VirtualDeviceSpec(
                        operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
                        device=vim.vm.device.VirtualPCIPassthrough(key=-200, backing=backing),
                    )
                )
            config = vim.vm.ConfigSpec(numCPUs=vcpus, memoryMB=memory_mib, deviceChange=changes)
            self._wait(si, ref.ReconfigVM_Task(spec=config), f"cannot resize VM {name!r}")
            return self._vm_info(si, ref)

        return self._call(f"cannot resize VM {name!r}", run)

    # ---- what vCenter does not do through this driver --------------------------------------

    def image_import(self, pool: str, volume_name: str, source_path: str) -> VolumeInfo:
        raise unsupported("image upload", "the vCenter driver (import a template instead)")

    def image_flatten(self, pool: str, overlay_volume: str, new_volume_name: str) -> VolumeInfo:
        raise unsupported("image flattening", "the vCenter driver")

    def volume_list(self, pool: str) -> list[VolumeInfo]:
        raise unsupported("volume listing", "the vCenter driver")

    def volume_delete(self, pool: str, volume_name: str) -> None:
        raise unsupported("volume deletion", "the vCenter driver")

    def volume_create(self, pool: str, volume_name: str, size_gib: int) -> VolumeInfo:
        raise unsupported("volumes without a VM", "the vCenter driver (disks are added to a VM)")

    def attach_volume(self, name: str, pool: str, volume_name: str) -> DiskInfo:
        raise unsupported("attaching a kept disk", "the vCenter driver (a disk is a file of its VM)")

    def pool_ensure(self, name: str, path: str) -> None:
        raise unsupported("creating storage pools", "the vCenter driver (datastores are managed in vCenter)")

    def network_ensure(self, spec: NetworkSpec) -> None:
        raise unsupported("network creation", "the vCenter driver (portgroups are managed in vCenter)")

    def network_delete(self, name: str) -> None:
        raise unsupported("network deletion", "the vCenter driver")

    def dhcp_host_set(self, network: str, host: DhcpHost) -> None:
        raise unsupported("DHCP reservations", "the vCenter driver")

    def dhcp_host_remove(self, network: str, mac: str) -> None:
        raise unsupported("DHCP reservations", "the vCenter driver")

    def dhcp_hosts(self, network: str) -> list[DhcpHost]:
        raise unsupported("DHCP reservations", "the vCenter driver")

    def nwfilter_define(self, spec: NwFilterSpec) -> str:
        raise unsupported("nwfilter", "the vCenter driver")

    def nwfilter_delete(self, name: str) -> None:
        raise unsupported("nwfilter", "the vCenter driver")

    def forward_set(self, spec: ForwardSpec) -> str:
        raise unsupported("host firewall rules (elastic IPs, port forwards)", "the vCenter driver")

    def forward_remove(self, key: str) -> bool:
        raise unsupported("host firewall rules (elastic IPs, port forwards)", "the vCenter driver")

    def forward_keys(self) -> set[str]:
        raise unsupported("host firewall rules (elastic IPs, port forwards)", "the vCenter driver")


# ---- turning vSphere data into VMInfo, from pyVmomi objects or from raw XML -------------


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
    out: dict[str, Any] = {"key": _text(el, f"{_NS}key"), "label": _text(el, f"{_NS}deviceInfo/{_NS}label")}
    backing = el.find(f"{_NS}backing")
    if kind == "VirtualDisk":
        out["kind"] = "disk"
        size = _text(el, f"{_NS}capacityInBytes")
        out["size"] = int(size) if size else int(_text(el, f"{_NS}capacityInKB", "0")) * 1024
        out["file"] = _text(backing, f"{_NS}fileName")
        out["backing"] = _text(backing, f"{_NS}parent/{_NS}fileName")
    elif el.find(f"{_NS}macAddress") is not None or kind.startswith(("VirtualE1000", "VirtualVmxnet", "VirtualPCNet")):
        out["kind"] = "nic"
        out["mac"] = _text(el, f"{_NS}macAddress")
        btype = _xsi(backing) if backing is not None else ""
        if btype == "VirtualEthernetCardDistributedVirtualPortBackingInfo":
            out["portgroup"] = _text(backing, f"{_NS}port/{_NS}portgroupKey")
        elif btype == "VirtualEthernetCardOpaqueNetworkBackingInfo":
            out["network"] = _text(backing, f"{_NS}opaqueNetworkId")
        else:
            out["network"] = _text(backing, f"{_NS}deviceName")
    elif kind == "VirtualPCIPassthrough":
        out["kind"] = "gpu"
        out["vgpu"] = _text(backing, f"{_NS}vgpu")
    return out


def _value_from_xml(val: ET.Element | None) -> Any:
    """A property value from raw SOAP: devices become dicts, the rest stays text (typed later)."""
    if val is None:
        return None
    if _xsi(val) == "ArrayOfVirtualDevice":
        return [_device_from_xml(d) for d in val]
    return val.text


def _props_from_objects(props: dict[str, Any]) -> dict[str, Any]:
    out = dict(props)
    if "config.hardware.device" in out:
        out["config.hardware.device"] = [_device_dict(d) for d in out["config.hardware.device"] or []]
    if "runtime.host" in out and out["runtime.host"] is not None:
        out["runtime.host"] = out["runtime.host"]._moId
    if "runtime.powerState" in out:
        out["runtime.powerState"] = str(out["runtime.powerState"])
    return out


def _disk_info(dev: dict[str, Any]) -> DiskInfo:
    return DiskInfo(
        target=dev["key"], size_bytes=dev.get("size", 0), path=dev.get("file", ""), backing=dev.get("backing", "")
    )


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _vm_info(moid: str, props: dict[str, Any], portgroups: dict[str, str], hosts: dict[str, str]) -> VMInfo:
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
        power_state=_POWER.get(str(props.get("runtime.powerState")), PowerState.UNKNOWN),
        vcpus=int(props.get("config.hardware.numCPU") or 0),
        memory_mib=int(props.get("config.hardware.memoryMB") or 0),
        disks=tuple(_disk_info(d) for d in devices if d.get("kind") == "disk"),
        nics=nics,
        gpu=gpu,
        template=_as_bool(props.get("config.template")),
        guest_ip=props.get("guest.ipAddress") or "",
        host=hosts.get(props.get("runtime.host") or "", ""),
        description=props.get("config.annotation") or "",
        ref=moid,
    )


def _backing_network_key(backing: Any) -> str:
    port = getattr(backing, "port", None)
    if port is not None:
        return f"dvpg:{port.portgroupKey}"
    return f"net:{getattr(backing, 'deviceName', '')}"

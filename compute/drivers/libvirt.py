"""Libvirt driver: desktops as domains on one libvirt URI (qemu:///system, qemu+ssh://..., test:///default).

System disks are qcow2 linked clones of a golden volume in the same pool; every volume
this driver creates is named after its VM (``<vm>-system*.qcow2``, ``<vm>-data-*.qcow2``),
and only such volumes are ever deleted with the VM, so golden images are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import libvirt

from . import hostfw
from . import xml as lx
from .base import (
    GIB,
    MIB,
    ConsoleAddress,
    DhcpHost,
    DiskInfo,
    DriverError,
    ErrorCode,
    ForwardSpec,
    GpuSpec,
    HostInfo,
    ImageInfo,
    NetworkSpec,
    NwFilterSpec,
    PowerState,
    SnapshotInfo,
    VMInfo,
    VMSpec,
    VolumeInfo,
    unsupported,
)

T = TypeVar("T")

# libvirt prints every error to stderr by default; ours become DriverError instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

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

_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_NWFILTER,
    libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    libvirt.VIR_ERR_NO_NODE_DEVICE,
    libvirt.VIR_ERR_NO_SECRET,
}
_UNSUPPORTED = {libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED, libvirt.VIR_ERR_NO_DOMAIN_METADATA}
_INVALID_SPEC = {
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_NO_SOURCE,
    libvirt.VIR_ERR_NO_TARGET,
}
_AUTH = {
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_CANCELLED,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
    libvirt.VIR_ERR_ACCESS_DENIED,
}
_EXISTS = {libvirt.VIR_ERR_DOM_EXIST, libvirt.VIR_ERR_STORAGE_VOL_EXIST, libvirt.VIR_ERR_NETWORK_EXIST}
# Errors of the connection itself: the daemon went away, the socket broke.
_CONNECTION = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC}


def _is_connection_error(exc: libvirt.libvirtError) -> bool:
    code, domain = exc.get_error_code(), exc.get_error_domain()
    if code in _CONNECTION:
        return True
    # "Cannot recv data", "client socket is closed", "unable to connect to server": RPC layer.
    return domain in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE) and code in (
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_INTERNAL_ERROR,
        libvirt.VIR_ERR_OPERATION_FAILED,
    )


def map_error(exc: libvirt.libvirtError, what: str) -> DriverError:
    """One DriverError for a libvirtError, with ``permanent`` set by whether a retry can help."""
    code = exc.get_error_code()
    message = f"{what}: {exc.get_error_message() or exc}"
    if code in _NOT_FOUND:
        return DriverError(message, permanent=True, code=ErrorCode.NOT_FOUND)
    if code in _UNSUPPORTED:
        return DriverError(message, permanent=True, code=ErrorCode.UNSUPPORTED)
    if code in _AUTH:
        return DriverError(message, permanent=True, code=ErrorCode.AUTH)
    if code in _EXISTS:
        return DriverError(message, permanent=True, code=ErrorCode.EXISTS)
    if code in _INVALID_SPEC:
        return DriverError(message, permanent=True, code=ErrorCode.INVALID_SPEC)
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return DriverError(message, permanent=True, code=ErrorCode.INVALID_STATE)
    if code in (libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_ERR_AGENT_UNRESPONSIVE):
        # Mostly "cannot acquire state change lock": another job holds the domain.
        return DriverError(message, permanent=False, code=ErrorCode.BUSY)
    if code == libvirt.VIR_ERR_NO_CONNECT and "no connection driver" in message:
        return DriverError(message, permanent=True, code=ErrorCode.INVALID_SPEC)
    if _is_connection_error(exc):
        return DriverError(message, permanent=False, code=ErrorCode.UNREACHABLE)
    return DriverError(message, permanent=True, code=ErrorCode.ERROR)


def check_image(path: str, *, qemu_img: str = "qemu-img") -> ImageInfo:
    """Format and size of an uploaded image file, by ``qemu-img info``; BAD_IMAGE if unusable.

    Runs where the file is (the portal host), before anything is sent to a hypervisor.
    """

    def bad(message: str) -> DriverError:
        return DriverError(message, permanent=True, code=ErrorCode.BAD_IMAGE)

    if not os.path.isfile(path):
        raise bad(f"no such file: {path}")
    try:
        proc = subprocess.run(
            [qemu_img, "info", "--force-share", "--output=json", path],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DriverError("qemu-img is not installed", permanent=True, code=ErrorCode.UNSUPPORTED) from exc
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"qemu-img info timed out on {path}", permanent=False, code=ErrorCode.TIMEOUT) from exc
    if proc.returncode != 0:
        raise bad(f"not a disk image: {proc.stderr.strip() or path}")
    info = json.loads(proc.stdout)
    fmt, size = info.get("format", ""), int(info.get("virtual-size", 0))
    if fmt not in ("qcow2", "raw"):
        raise bad(f"{path}: format {fmt!r}, expected qcow2 or raw")
    if info.get("backing-filename"):
        raise bad(f"{path} depends on a backing file; flatten it first")
    if info.get("format-specific", {}).get("data", {}).get("corrupt"):
        raise bad(f"{path} is marked corrupt")
    # Any file reads as "raw"; anything under 1 MiB is no disk or ISO worth booting.
    if size < MIB:
        raise bad(f"{path}: virtual size {size} bytes is too small for a disk image")
    if fmt == "raw":
        with open(path, "rb") as image:
            image.seek(0x8001)
            if image.read(5) == b"CD001":  # ISO 9660 volume descriptor
                fmt = "iso"
    return ImageInfo(path=path, format=fmt, virtual_size_bytes=size, file_size_bytes=os.path.getsize(path))


def _now_from_epoch(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


class LibvirtDriver:
    """One libvirt connection, opened on first use and reopened when it breaks; thread-safe."""

    kind = "libvirt"

    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        qemu_img: str = "qemu-img",
        firewall_prefix: str = hostfw.DEFAULT_PREFIX,
        **_options: Any,
    ) -> None:
        self.url = url
        self._firewall_prefix = firewall_prefix
        self._username = username
        self._password = password
        self._qemu_img = qemu_img
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None

    # ---- connection -------------------------------------------------------------------

    def _open(self) -> libvirt.virConnect:
        try:
            if not (self._username or self._password):
                return libvirt.open(self.url)

            def answer(creds: list, _data: Any) -> int:
                for cred in creds:
                    if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                        cred[4] = self._username
                    elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                        cred[4] = self._password
                return 0

            auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]
            return libvirt.openAuth(self.url, auth, 0)
        except libvirt.libvirtError as exc:
            err = map_error(exc, f"cannot connect to {self.url}")
            if err.code == ErrorCode.ERROR:
                # Failing to open is about reaching the daemon unless libvirt says otherwise.
                err = DriverError(err.message, permanent=False, code=ErrorCode.UNREACHABLE)
            raise err from exc

    def _connection(self) -> libvirt.virConnect:
        conn = self._conn
        if conn is not None and self._alive(conn):
            return conn
        with self._lock:
            # Another thread may have reopened it while we waited for the lock.
            if self._conn is not None and self._conn is not conn and self._alive(self._conn):
                return self._conn
            self._discard(self._conn)
            self._conn = self._open()
            return self._conn

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    @staticmethod
    def _discard(conn: libvirt.virConnect | None) -> None:
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _forget(self, conn: libvirt.virConnect) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        self._discard(conn)

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[libvirt.virConnect]:
        """Yield the connection; turn libvirt errors into DriverError, dropping a broken connection."""
        conn = self._connection()
        try:
            yield conn
        except libvirt.libvirtError as exc:
            err = map_error(exc, what)
            if err.code == ErrorCode.UNREACHABLE:
                self._forget(conn)
            raise err from exc

    def _run(self, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        with self._calls(what) as conn:
            return fn(conn)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        self._discard(conn)

    def _is_test_driver(self, conn: libvirt.virConnect) -> bool:
        return conn.getType().upper() == "TEST"

    # ---- host -------------------------------------------------------------------------

    def check(self) -> None:
        self._run(f"cannot reach {self.url}", lambda conn: conn.getLibVersion())

    def host_info(self) -> HostInfo:
        def read(conn: libvirt.virConnect) -> HostInfo:
            _model, memory_mib, cpus, *_ = conn.getInfo()
            version = conn.getVersion()
            major, minor, micro = version // 1_000_000, version // 1000 % 1000, version % 1000
            return HostInfo(
                name=conn.getHostname(),
                cpus=cpus,
                memory_mib=memory_mib,
                free_memory_mib=conn.getFreeMemory() // MIB,
                hypervisor=f"{conn.getType()} {major}.{minor}.{micro}",
            )

        return self._run("cannot read host capacity", read)

    # ---- VMs: reading -----------------------------------------------------------------

    def _domain(self, conn: libvirt.virConnect, name: str) -> libvirt.virDomain:
        try:
            return conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise DriverError(f"VM {name!r} not found", permanent=True, code=ErrorCode.NOT_FOUND) from exc
            raise

    @staticmethod
    def _state(dom: libvirt.virDomain) -> PowerState:
        return _STATES.get(dom.state()[0], PowerState.UNKNOWN)

    def _volume_sizes(
        self, conn: libvirt.virConnect, root: ET.Element, cache: dict, *, backing: bool = False
    ) -> tuple[dict, dict, dict]:
        """Capacity, path and (if asked) backing file per disk target, from the pools' volumes.

        One listing per pool serves every domain of a list_vms() call; the backing file costs
        an extra call per volume, so only get_vm() asks for it.
        """
        sizes: dict[str, int] = {}
        paths: dict[str, str] = {}
        backings: dict[str, str] = {}
        for disk in lx.domain_disks(root):
            target = disk.find("target")
            pool, volume, _path = lx.disk_source(disk)
            if target is None or not pool:
                continue
            if pool not in cache:
                cache[pool] = {}
                with contextlib.suppress(libvirt.libvirtError):
                    for vol in conn.storagePoolLookupByName(pool).listAllVolumes(0):
                        with contextlib.suppress(libvirt.libvirtError):
                            cache[pool][vol.name()] = (vol.info()[1], vol.path())
            dev = target.get("dev", "")
            if volume in cache[pool]:
                sizes[dev], paths[dev] = cache[pool][volume]
                if backing:
                    with contextlib.suppress(libvirt.libvirtError):
                        vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(volume)
                        backings[dev] = self._volume_format(vol)[1]
        return sizes, paths, backings

    def _info(
        self, conn: libvirt.virConnect, dom: libvirt.virDomain, cache: dict | None = None, *, detail: bool = True
    ) -> VMInfo:
        root = lx.parse(dom.XMLDesc(0))
        sizes, paths, backings = self._volume_sizes(conn, root, {} if cache is None else cache, backing=detail)
        return lx.vm_info(root, self._state(dom), sizes, paths, backings)

    def list_vms(self) -> list[VMInfo]:
        def read(conn: libvirt.virConnect) -> list[VMInfo]:
            cache: dict = {}
            result = []
            for dom in conn.listAllDomains(0):
                try:
                    result.append(self._info(conn, dom, cache, detail=False))
                except libvirt.libvirtError as exc:
                    # A domain undefined while we list it is simply not there any more.
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return result

        return self._run("cannot list VMs", read)

    def list_templates(self) -> list[VMInfo]:
        return []  # libvirt's golden images are volumes: see volume_list()

    def get_vm(self, name: str) -> VMInfo:
        return self._run(f"cannot read VM {name!r}", lambda conn: self._info(conn, self._domain(conn, name)))

    # ---- VMs: creating and deleting -----------------------------------------------------

    def _pool(self, conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
        try:
            return conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise DriverError(f"storage pool {name!r} not found", permanent=True, code=ErrorCode.NOT_FOUND) from exc
            raise

    def _volume(self, pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol:
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise DriverError(
                    f"volume {name!r} not found in pool {pool.name()!r}", permanent=True, code=ErrorCode.NOT_FOUND
                ) from exc
            raise

    @staticmethod
    def _find_volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise

    @staticmethod
    def _volume_format(vol: libvirt.virStorageVol) -> tuple[str, str]:
        """(format, backing path) of a volume."""
        root = lx.parse(vol.XMLDesc(0))
        fmt = root.find("target/format")
        return (fmt.get("type", "raw") if fmt is not None else "raw"), root.findtext("backingStore/path", "")

    def _linked_clone(
        self, pool: libvirt.virStoragePool, golden: libvirt.virStorageVol, name: str, capacity: int
    ) -> tuple[libvirt.virStorageVol, bool]:
        """The overlay volume ``name`` backed by ``golden``; reused when a retry finds it already made."""
        golden_format, _ = self._volume_format(golden)
        existing = self._find_volume(pool, name)
        if existing is not None:
            _fmt, backing = self._volume_format(existing)
            if backing == golden.path():
                return existing, False
            raise DriverError(
                f"volume {name!r} already exists and is not a clone of {golden.name()!r}",
                permanent=True,
                code=ErrorCode.EXISTS,
            )
        xml = lx.volume_xml(name, capacity, backing_path=golden.path(), backing_format=golden_format)
        return pool.createXML(xml, 0), True

    def _empty_volume(
        self, pool: libvirt.virStoragePool, name: str, size_gib: int
    ) -> tuple[libvirt.virStorageVol, bool]:
        if size_gib < 1:
            raise DriverError("a data disk needs at least 1 GiB", permanent=True, code=ErrorCode.INVALID_SPEC)
        existing = self._find_volume(pool, name)
        if existing is not None:
            return existing, False
        return pool.createXML(lx.volume_xml(name, size_gib * GIB), 0), True

    def create_vm(self, spec: VMSpec, *, start: bool = True) -> VMInfo:
        if not (spec.image_pool and spec.image_volume):
            raise DriverError(
                "a libvirt VM needs image_pool and image_volume (its golden image)",
                permanent=True,
                code=ErrorCode.INVALID_SPEC,
            )
        with self._calls(f"cannot create VM {spec.name!r}") as conn:
            existing = self._existing_same(conn, spec)
            if existing is not None:
                if start and self._state(existing) == PowerState.STOPPED:
                    existing.create()
                return self._info(conn, existing)

            pool = self._pool(conn, spec.image_pool)
            golden = self._volume(pool, spec.image_volume)
            capacity = max(golden.info()[1], spec.system_disk_gib * GIB)
            created: list[libvirt.virStorageVol] = []
            try:
                system, new = self._linked_clone(pool, golden, f"{spec.name}-system.qcow2", capacity)
                if new:
                    created.append(system)
                data: list[tuple[str, str]] = []
                for index, disk in enumerate(spec.data_disks, start=1):
                    data_pool = self._pool(conn, disk.pool) if disk.pool else pool
                    vol, new = self._empty_volume(data_pool, f"{spec.name}-data-{index}.qcow2", disk.size_gib)
                    if new:
                        created.append(vol)
                    data.append((data_pool.name(), vol.name()))
                xml = lx.domain_xml(spec, system_pool=pool.name(), system_volume=system.name(), data_volumes=data)
                dom = conn.defineXML(xml)
            except (libvirt.libvirtError, DriverError):
                # Leave nothing behind that a retry would trip over.
                for vol in created:
                    with contextlib.suppress(libvirt.libvirtError):
                        vol.delete(0)
                raise
            if start:
                dom.create()
            return self._info(conn, dom)

    def _existing_same(self, conn: libvirt.virConnect, spec: VMSpec) -> libvirt.virDomain | None:
        """The domain already created from this very spec, None if the name is free; else EXISTS."""
        try:
            dom = conn.lookupByName(spec.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise
        _pool, _volume, fingerprint = lx.image_meta(lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
        if fingerprint != lx.spec_fingerprint(spec):
            raise DriverError(
                f"a different VM named {spec.name!r} already exists", permanent=True, code=ErrorCode.EXISTS
            )
        return dom

    def _owned_volumes(self, conn: libvirt.virConnect, name: str, root: ET.Element) -> list[libvirt.virStorageVol]:
        """Volumes of the VM's disks that this driver made for it (named after it), never the golden one."""
        golden = lx.image_meta(root)[:2]
        owned = []
        for disk in lx.domain_disks(root):
            pool, volume, _path = lx.disk_source(disk)
            if not pool or (pool, volume) == golden or not volume.startswith(f"{name}-"):
                continue
            try:
                owned.append(conn.storagePoolLookupByName(pool).storageVolLookupByName(volume))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
                    raise
        return owned

    def delete_vm(self, name: str) -> None:
        """Destroy, delete the VM's own volumes, undefine. A VM already gone is not an error."""
        with self._calls(f"cannot delete VM {name!r}") as conn:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                raise
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if dom.isActive():
                try:
                    dom.destroy()
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # stopped meanwhile
                        raise
            # Volumes go before the definition: a retry after a crash still finds the domain,
            # so it still knows which volumes are left to delete.
            for vol in self._owned_volumes(conn, name, root):
                try:
                    vol.delete(0)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                        raise
            flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            try:
                dom.undefineFlags(flags)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise

    # ---- power ------------------------------------------------------------------------

    def _domain_call(
        self, name: str, what: str, allowed: set[PowerState], fn: Callable[[libvirt.virDomain], Any]
    ) -> None:
        """Run a power operation; a VM in the wrong state is INVALID_STATE whatever libvirt's wording."""
        with self._calls(f"cannot {what} VM {name!r}") as conn:
            dom = self._domain(conn, name)
            state = self._state(dom)
            if state not in allowed:
                raise DriverError(
                    f"cannot {what} VM {name!r}: it is {state}", permanent=True, code=ErrorCode.INVALID_STATE
                )
            fn(dom)

    def start(self, name: str) -> None:
        self._domain_call(name, "start", {PowerState.STOPPED}, lambda dom: dom.create())

    def shutdown(self, name: str, *, force: bool = False) -> None:
        """Ask the guest to power off (returns at once; poll get_vm), or pull the plug with force."""
        self._domain_call(
            name,
            "stop",
            {PowerState.RUNNING, PowerState.PAUSED},
            lambda dom: dom.destroy() if force else dom.shutdown(),
        )

    def reboot(self, name: str) -> None:
        self._domain_call(name, "reboot", {PowerState.RUNNING}, lambda dom: dom.reboot(0))

    def suspend(self, name: str) -> None:
        self._domain_call(name, "suspend", {PowerState.RUNNING}, lambda dom: dom.suspend())

    def resume(self, name: str) -> None:
        self._domain_call(name, "resume", {PowerState.PAUSED}, lambda dom: dom.resume())

    def console_address(self, name: str) -> ConsoleAddress:
        with self._calls(f"cannot read the console of VM {name!r}") as conn:
            if self._is_test_driver(conn):
                raise unsupported("a VNC console", "libvirt's test driver")
            dom = self._domain(conn, name)
            info = self._info(conn, dom)
            if info.power_state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise DriverError(f"VM {name!r} is not running", permanent=True, code=ErrorCode.INVALID_STATE)
            if info.vnc_port is None:
                raise DriverError(f"VM {name!r} has no VNC display", permanent=True, code=ErrorCode.CONSOLE_UNSUPPORTED)
            return ConsoleAddress(host=info.vnc_host, port=info.vnc_port)

    # ---- snapshots --------------------------------------------------------------------

    @staticmethod
    def _snapshot_info(snap: libvirt.virDomainSnapshot) -> SnapshotInfo:
        root = lx.parse(snap.getXMLDesc(0))
        state = root.findtext("state", "")
        power = {
            "running": PowerState.RUNNING,
            "shutoff": PowerState.STOPPED,
            "paused": PowerState.PAUSED,
        }.get(state, PowerState.UNKNOWN)
        return SnapshotInfo(
            name=root.findtext("name", ""),
            created_at=_now_from_epoch(root.findtext("creationTime")),
            description=root.findtext("description", ""),
            parent=root.findtext("parent/name", ""),
            current=bool(snap.isCurrent(0)),
            power_state=power,
        )

    def _snapshot(self, dom: libvirt.virDomain, snapshot: str) -> libvirt.virDomainSnapshot:
        try:
            return dom.snapshotLookupByName(snapshot, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                raise DriverError(
                    f"snapshot {snapshot!r} of VM {dom.name()!r} not found", permanent=True, code=ErrorCode.NOT_FOUND
                ) from exc
            raise

    def snapshot_create(self, name: str, snapshot: str, description: str = "") -> SnapshotInfo:
        with self._calls(f"cannot snapshot VM {name!r}") as conn:
            dom = self._domain(conn, name)
            if snapshot in dom.snapshotListNames(0):
                raise DriverError(
                    f"VM {name!r} already has a snapshot {snapshot!r}", permanent=True, code=ErrorCode.EXISTS
                )
            root = ET.Element("domainsnapshot")
            ET.SubElement(root, "name").text = snapshot
            if description:
                ET.SubElement(root, "description").text = description
            # Internal snapshots live inside the qcow2 overlay: no extra files to track.
            snap = dom.snapshotCreateXML(ET.tostring(root, encoding="unicode"), 0)
            return self._snapshot_info(snap)

    def snapshot_list(self, name: str) -> list[SnapshotInfo]:
        with self._calls(f"cannot list snapshots of VM {name!r}") as conn:
            snaps = [self._snapshot_info(s) for s in self._domain(conn, name).listAllSnapshots(0)]
            parents = {s.name: s.parent for s in snaps}

            def depth(snap: SnapshotInfo) -> int:
                level, parent = 0, snap.parent
                while parent and level < len(parents):
                    level, parent = level + 1, parents.get(parent, "")
                return level

            # Creation times have one-second resolution: parents still come before children.
            epoch = datetime.min.replace(tzinfo=UTC)
            return sorted(snaps, key=lambda s: (s.created_at or epoch, depth(s), s.name))

    def snapshot_revert(self, name: str, snapshot: str) -> None:
        with self._calls(f"cannot revert VM {name!r} to {snapshot!r}") as conn:
            dom = self._domain(conn, name)
            dom.revertToSnapshot(self._snapshot(dom, snapshot), 0)

    def snapshot_delete(self, name: str, snapshot: str) -> None:
        with self._calls(f"cannot delete snapshot {snapshot!r} of VM {name!r}") as conn:
            dom = self._domain(conn, name)
            self._snapshot(dom, snapshot).delete(0)

    # ---- disks ------------------------------------------------------------------------

    @staticmethod
    def _affect(dom: libvirt.virDomain) -> int:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        return flags

    def attach_disk(self, name: str, size_gib: int, *, pool: str = "") -> DiskInfo:
        """A new empty qcow2 volume, attached live (when running) and in the persistent config."""
        with self._calls(f"cannot attach a disk to VM {name!r}") as conn:
            if self._is_test_driver(conn):
                raise unsupported("disk attach", "libvirt's test driver")
            dom = self._domain(conn, name)
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            live = lx.parse(dom.XMLDesc(0))
            used = {t.get("dev", "") for r in (root, live) for t in r.findall("devices/disk/target")}
            if not pool:
                pool = lx.disk_source(lx.domain_disks(root)[0])[0] if lx.domain_disks(root) else ""
            if not pool:
                raise DriverError("no storage pool given for the disk", permanent=True, code=ErrorCode.INVALID_SPEC)
            target = lx.next_target(used)
            storage = self._pool(conn, pool)
            vol, _new = self._empty_volume(storage, f"{name}-data-{secrets.token_hex(4)}.qcow2", size_gib)
            try:
                dom.attachDeviceFlags(lx.disk_xml(pool, vol.name(), target), self._affect(dom))
            except libvirt.libvirtError:
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
                raise
            return DiskInfo(target=target, size_bytes=vol.info()[1], pool=pool, volume=vol.name(), path=vol.path())

    def detach_disk(self, name: str, target: str, *, delete_volume: bool = True) -> None:
        """Remove a data disk from the config now, and ask the guest to release it live.

        A live unplug needs the guest's cooperation; libvirt's synchronous detach waits
        for it (5 s, then gives up silently). The persistent config is what counts, so
        the live part goes through the asynchronous detach-by-alias and we do not wait.
        """
        if target == lx.SYSTEM_TARGET:
            raise DriverError("the system disk cannot be detached", permanent=True, code=ErrorCode.INVALID_SPEC)
        with self._calls(f"cannot detach disk {target!r} from VM {name!r}") as conn:
            if self._is_test_driver(conn):
                raise unsupported("disk detach", "libvirt's test driver")
            dom = self._domain(conn, name)
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            disk = next((d for d in lx.domain_disks(root) if d.find(f"target[@dev='{target}']") is not None), None)
            live_disk = None
            if dom.isActive():
                live = lx.parse(dom.XMLDesc(0))
                live_disk = next(
                    (d for d in lx.domain_disks(live) if d.find(f"target[@dev='{target}']") is not None), None
                )
            if disk is None and live_disk is None:
                raise DriverError(f"VM {name!r} has no disk {target!r}", permanent=True, code=ErrorCode.NOT_FOUND)
            source = disk if disk is not None else live_disk
            pool, volume, _path = lx.disk_source(source)
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
            dom = self._domain(conn, name)
            if dom.isActive():
                raise DriverError(
                    f"VM {name!r} must be stopped to reset its system disk",
                    permanent=True,
                    code=ErrorCode.INVALID_STATE,
                )
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            system = next(
                (d for d in lx.domain_disks(root) if d.find(f"target[@dev='{lx.SYSTEM_TARGET}']") is not None), None
            )
            if system is None:
                raise DriverError(f"VM {name!r} has no system disk", permanent=True, code=ErrorCode.NOT_FOUND)
            pool_name, old_name, _path = lx.disk_source(system)
            golden_pool, golden_name, _ = lx.image_meta(root)
            pool = self._pool(conn, pool_name)
            old = self._find_volume(pool, old_name)
            if not golden_name and old is not None:
                golden_path = self._volume_format(old)[1]
                golden = conn.storageVolLookupByPath(golden_path) if golden_path else None
            else:
                golden = self._volume(self._pool(conn, golden_pool or pool_name), golden_name)
            if golden is None:
                raise DriverError(
                    f"VM {name!r} was not cloned from a golden image", permanent=True, code=ErrorCode.INVALID_STATE
                )
            capacity = old.info()[1] if old is not None else golden.info()[1]
            new, _ = self._linked_clone(pool, golden, f"{name}-system-{secrets.token_hex(4)}.qcow2", capacity)
            for snap in dom.listAllSnapshots(0):
                with contextlib.suppress(libvirt.libvirtError):
                    snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
            system.find("source").set("volume", new.name())
            try:
                conn.defineXML(ET.tostring(root, encoding="unicode"))
            except libvirt.libvirtError:
                with contextlib.suppress(libvirt.libvirtError):
                    new.delete(0)
                raise
            if old is not None and old_name.startswith(f"{name}-") and old_name != golden.name():
                old.delete(0)

    # ---- resize and clone -------------------------------------------------------------

    def resize(self, name: str, *, vcpus: int, memory_mib: int, gpu: GpuSpec | None = None) -> VMInfo:
        """Redefine a stopped VM with new vCPU, memory and GPU devices (``gpu`` None: none). Idempotent."""
        with self._calls(f"cannot resize VM {name!r}") as conn:
            dom = self._domain(conn, name)
            if dom.isActive():
                raise DriverError(
                    f"VM {name!r} must be stopped to change its size", permanent=True, code=ErrorCode.INVALID_STATE
                )
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            lx.set_shape(root, vcpus=vcpus, memory_mib=memory_mib, gpu=gpu)
            dom = conn.defineXML(ET.tostring(root, encoding="unicode"))
            return self._info(conn, dom)

    def clone_vm(self, source: str, spec: VMSpec, *, start: bool = True) -> VMInfo:
        """A new VM ``spec.name`` whose system disk is a copy of the stopped VM ``source``'s.

        The copy is made by the storage pool (virStorageVolCreateXMLFrom, so it works on a
        remote host too) and reads through the source's backing chain: the new volume stands
        alone, and neither the source's overlay nor the golden image is touched. Data disks
        and snapshots are not copied. Running it again after success returns the same VM.
        """
        with self._calls(f"cannot clone VM {source!r} to {spec.name!r}") as conn:
            existing = self._existing_same(conn, spec)
            if existing is not None:
                if start and self._state(existing) == PowerState.STOPPED:
                    existing.create()
                return self._info(conn, existing)
            src = self._domain(conn, source)
            if src.isActive():
                raise DriverError(
                    f"VM {source!r} must be stopped to be cloned", permanent=True, code=ErrorCode.INVALID_STATE
                )
            root = lx.parse(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            system = next(
                (d for d in lx.domain_disks(root) if d.find(f"target[@dev='{lx.SYSTEM_TARGET}']") is not None), None
            )
            pool_name, volume_name, _path = lx.disk_source(system) if system is not None else ("", "", "")
            if not (pool_name and volume_name):
                raise DriverError(
                    f"VM {source!r} has no system disk in a storage pool", permanent=True, code=ErrorCode.INVALID_STATE
                )
            pool = self._pool(conn, pool_name)
            original = self._volume(pool, volume_name)
            copy_name = f"{spec.name}-system.qcow2"
            stale = self._find_volume(pool, copy_name)
            if stale is not None:
                # Left by an attempt that died before defining the VM: it may be incomplete.
                stale.delete(0)
            capacity = max(original.info()[1], spec.system_disk_gib * GIB)
            copy = pool.createXMLFrom(lx.volume_xml(copy_name, capacity), original, 0)
            try:
                xml = lx.domain_xml(spec, system_pool=pool.name(), system_volume=copy.name())
                dom = conn.defineXML(xml)
            except (libvirt.libvirtError, DriverError):
                with contextlib.suppress(libvirt.libvirtError):
                    copy.delete(0)
                raise
            if start:
                dom.create()
            return self._info(conn, dom)

    # ---- pools and volumes as objects of their own -----------------------------------

    def pool_ensure(self, name: str, path: str) -> None:
        """A directory pool ``name`` at ``path``, defined, built, started and autostarted when missing."""
        with self._calls(f"cannot set up storage pool {name!r}") as conn:
            try:
                pool = conn.storagePoolLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                    raise
                root = ET.Element("pool", type="dir")
                ET.SubElement(root, "name").text = name
                ET.SubElement(ET.SubElement(root, "target"), "path").text = path
                pool = conn.storagePoolDefineXML(ET.tostring(root, encoding="unicode"), 0)
                with contextlib.suppress(libvirt.libvirtError):  # the directory may exist already
                    pool.build(0)
            if not pool.isActive():
                pool.create(0)
            with contextlib.suppress(libvirt.libvirtError):  # the test driver has no autostart
                pool.setAutostart(1)

    def attach_volume(self, name: str, pool: str, volume_name: str) -> DiskInfo:
        """Attach an existing volume (live when running, and persistently); attached already: its disk."""
        with self._calls(f"cannot attach volume {volume_name!r} to VM {name!r}") as conn:
            if self._is_test_driver(conn):
                raise unsupported("disk attach", "libvirt's test driver")
            dom = self._domain(conn, name)
            vol = self._volume(self._pool(conn, pool), volume_name)
            root = lx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            for disk in lx.domain_disks(root):
                if lx.disk_source(disk)[:2] == (pool, volume_name):  # a redelivered task: done already
                    target = disk.find("target").get("dev", "")
                    return DiskInfo(
                        target=target, size_bytes=vol.info()[1], pool=pool, volume=volume_name, path=vol.path()
                    )
            live = lx.parse(dom.XMLDesc(0))
            used = {t.get("dev", "") for r in (root, live) for t in r.findall("devices/disk/target")}
            target = lx.next_target(used)
            dom.attachDeviceFlags(lx.disk_xml(pool, volume_name, target), self._affect(dom))
            return DiskInfo(target=target, size_bytes=vol.info()[1], pool=pool, volume=volume_name, path=vol.path())

    def volume_create(self, pool: str, volume_name: str, size_gib: int) -> VolumeInfo:
        """An empty qcow2 volume (sparse); an existing volume of that name is returned as it is."""
        with self._calls(f"cannot create volume {volume_name!r} in pool {pool!r}") as conn:
            storage = self._pool(conn, pool)
            vol, _new = self._empty_volume(storage, volume_name, size_gib)
            return self._volume_info(storage, vol)

    # ---- images and volumes -----------------------------------------------------------

    @staticmethod
    def _volume_info(pool: libvirt.virStoragePool, vol: libvirt.virStorageVol) -> VolumeInfo:
        root = lx.parse(vol.XMLDesc(0))
        fmt = root.find("target/format")
        _type, capacity, allocation = vol.info()
        return VolumeInfo(
            pool=pool.name(),
            name=vol.name(),
            path=vol.path(),
            format=fmt.get("type", "raw") if fmt is not None else "raw",
            capacity_bytes=capacity,
            allocation_bytes=allocation,
            backing=root.findtext("backingStore/path", ""),
        )

    def check_image(self, path: str) -> ImageInfo:
        return check_image(path, qemu_img=self._qemu_img)

    def image_import(self, pool: str, volume_name: str, source_path: str) -> VolumeInfo:
        """Upload a checked qcow2/raw file into ``pool`` as a golden volume (streamed: works remotely too)."""
        image = self.check_image(source_path)
        fmt = "raw" if image.format == "iso" else image.format
        with self._calls(f"cannot import {source_path} into pool {pool!r}") as conn:
            if self._is_test_driver(conn):
                raise unsupported("volume upload", "libvirt's test driver")
            storage = self._pool(conn, pool)
            if self._find_volume(storage, volume_name) is not None:
                raise DriverError(
                    f"pool {pool!r} already has a volume {volume_name!r}", permanent=True, code=ErrorCode.EXISTS
                )
            vol_el = ET.Element("volume")
            ET.SubElement(vol_el, "name").text = volume_name
            ET.SubElement(vol_el, "capacity", unit="bytes").text = str(image.virtual_size_bytes)
            ET.SubElement(ET.SubElement(vol_el, "target"), "format", type=fmt)
            vol = storage.createXML(ET.tostring(vol_el, encoding="unicode"), 0)
            stream = conn.newStream(0)
            try:
                file_size = os.path.getsize(source_path)
                vol.upload(stream, 0, file_size, 0)
                with open(source_path, "rb") as src:
                    stream.sendAll(lambda _st, nbytes, f: f.read(nbytes), src)
                stream.finish()
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
                raise
            storage.refresh(0)
            return self._volume_info(storage, self._volume(storage, volume_name))

    def image_flatten(self, pool: str, overlay_volume: str, new_volume_name: str) -> VolumeInfo:
        """A standalone copy (no backing file) of an overlay, to publish as a new golden image.

        The VM using the overlay should be stopped, or the copy is not consistent.
        """
        with self._calls(f"cannot flatten {overlay_volume!r} in pool {pool!r}") as conn:
            storage = self._pool(conn, pool)
            source = self._volume(storage, overlay_volume)
            if self._find_volume(storage, new_volume_name) is not None:
                raise DriverError(
                    f"pool {pool!r} already has a volume {new_volume_name!r}", permanent=True, code=ErrorCode.EXISTS
                )
            # createXMLFrom runs qemu-img convert, which reads through the backing chain.
            xml = lx.volume_xml(new_volume_name, source.info()[1])
            vol = storage.createXMLFrom(xml, source, 0)
            return self._volume_info(storage, vol)

    def volume_list(self, pool: str) -> list[VolumeInfo]:
        with self._calls(f"cannot list pool {pool!r}") as conn:
            storage = self._pool(conn, pool)
            storage.refresh(0)
            return sorted((self._volume_info(storage, v) for v in storage.listAllVolumes(0)), key=lambda v: v.name)

    def volume_delete(self, pool: str, volume_name: str) -> None:
        with self._calls(f"cannot delete volume {volume_name!r}") as conn:
            vol = self._find_volume(self._pool(conn, pool), volume_name)
            if vol is not None:
                vol.delete(0)

    # ---- networks ---------------------------------------------------------------------

    @staticmethod
    def _find_network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork | None:
        try:
            return conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                return None
            raise

    def _network(self, conn: libvirt.virConnect, name: str) -> libvirt.virNetwork:
        net = self._find_network(conn, name)
        if net is None:
            raise DriverError(f"network {name!r} not found", permanent=True, code=ErrorCode.NOT_FOUND)
        return net

    @staticmethod
    def _same_network(current: ET.Element, wanted: ET.Element) -> bool:
        def shape(root: ET.Element) -> tuple:
            forward = root.find("forward")
            ip = root.find("ip")
            rng = root.find("ip/dhcp/range")
            port = root.find("virtualport")
            return (
                forward.get("mode") if forward is not None else "none",
                ip.get("address") if ip is not None else "",
                ip.get("netmask") if ip is not None else "",
                (rng.get("start"), rng.get("end")) if rng is not None else None,
                port.get("type") if port is not None else "",
                sorted(tag.get("id", "") for tag in root.findall("vlan/tag")),
            )

        bridge = wanted.find("bridge")
        if bridge is not None:
            current_bridge = current.find("bridge")
            if current_bridge is None or current_bridge.get("name") != bridge.get("name"):
                return False
        return shape(current) == shape(wanted)

    def network_ensure(self, spec: NetworkSpec) -> None:
        """Define, start and autostart the network; an identical existing one is kept as it is.

        Safe when several processes (or portals) ensure the same network at once: a define
        or start that loses the race to another connection is taken as done when the
        network is then there (and the same), active."""
        wanted_xml = lx.network_xml(spec)
        with self._calls(f"cannot set up network {spec.name!r}") as conn:
            net = self._find_network(conn, spec.name)
            if net is None:
                try:
                    net = conn.networkDefineXML(wanted_xml)
                except libvirt.libvirtError:
                    # "already exists with uuid ...": another connection defined it first.
                    net = self._find_network(conn, spec.name)
                    if net is None:
                        raise
            if not self._same_network(lx.parse(net.XMLDesc(0)), lx.parse(wanted_xml)):
                raise DriverError(
                    f"network {spec.name!r} exists with another configuration", permanent=True, code=ErrorCode.EXISTS
                )
            if not net.isActive():
                try:
                    net.create()
                except libvirt.libvirtError:
                    # "network is already active": another connection started it first.
                    if not net.isActive():
                        raise
            if net.isPersistent() and not net.autostart():
                net.setAutostart(1)
        for host in spec.dhcp_hosts:
            self.dhcp_host_set(spec.name, host)

    def network_delete(self, name: str) -> None:
        with self._calls(f"cannot delete network {name!r}") as conn:
            net = self._find_network(conn, name)
            if net is None:
                return
            if net.isActive():
                net.destroy()
            if net.isPersistent():
                net.undefine()

    @staticmethod
    def _update_flags(net: libvirt.virNetwork) -> int:
        flags = 0
        if net.isActive():
            flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
        if net.isPersistent():
            flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        return flags

    def dhcp_hosts(self, network: str) -> list[DhcpHost]:
        return self._run(
            f"cannot read DHCP hosts of network {network!r}",
            lambda conn: lx.network_dhcp_hosts(self._network(conn, network).XMLDesc(0)),
        )

    def dhcp_host_set(self, network: str, host: DhcpHost) -> None:
        """Add or change the fixed address of ``host.mac``, live and persistently."""
        host = DhcpHost(mac=host.mac.lower(), ip=host.ip, name=host.name)
        with self._calls(f"cannot set DHCP host {host.mac} on network {network!r}") as conn:
            net = self._network(conn, network)
            current = lx.network_dhcp_hosts(net.XMLDesc(0))
            same_mac = next((h for h in current if h.mac == host.mac), None)
            if same_mac == host:
                return
            clash = next((h for h in current if h.ip == host.ip and h.mac != host.mac), None)
            if clash is not None:
                raise DriverError(
                    f"{host.ip} is already given to {clash.mac} on network {network!r}",
                    permanent=True,
                    code=ErrorCode.EXISTS,
                )
            command = (
                libvirt.VIR_NETWORK_UPDATE_COMMAND_MODIFY if same_mac else libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
            )
            net.update(
                command, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, lx.dhcp_host_xml(host), self._update_flags(net)
            )

    def dhcp_host_remove(self, network: str, mac: str) -> None:
        with self._calls(f"cannot remove DHCP host {mac} from network {network!r}") as conn:
            net = self._network(conn, network)
            entry = next((h for h in lx.network_dhcp_hosts(net.XMLDesc(0)) if h.mac == mac.lower()), None)
            if entry is None:
                return
            net.update(
                libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                -1,
                lx.dhcp_host_xml(entry),
                self._update_flags(net),
            )

    # ---- nwfilters --------------------------------------------------------------------

    def nwfilter_define(self, spec: NwFilterSpec) -> str:
        """Define or redefine a filter and return its UUID; running VMs pick up changes live."""
        with self._calls(f"cannot define nwfilter {spec.name!r}") as conn:
            if self._is_test_driver(conn):
                raise unsupported("nwfilter", "libvirt's test driver")
            uuid = spec.uuid
            if not uuid:
                # Redefining under the same name needs the same UUID, or libvirt refuses.
                with contextlib.suppress(libvirt.libvirtError):
                    uuid = conn.nwfilterLookupByName(spec.name).UUIDString()
            xml = lx.nwfilter_xml(NwFilterSpec(spec.name, uuid, spec.rules, spec.default_drop))
            return conn.nwfilterDefineXML(xml).UUIDString()

    def nwfilter_delete(self, name: str) -> None:
        with self._calls(f"cannot delete nwfilter {name!r}") as conn:
            if self._is_test_driver(conn):
                raise unsupported("nwfilter", "libvirt's test driver")
            try:
                flt = conn.nwfilterLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_NWFILTER:
                    return
                raise
            flt.undefine()

    # ---- host firewall: elastic IPs and port forwards ----------------------------------

    def _host_firewall(self) -> hostfw.HostFirewall:
        """The host's iptables, reachable only when the endpoint is this machine's own daemon."""
        if not hostfw.is_local_uri(self.url):
            raise DriverError(
                f"host firewall rules (elastic IPs, port forwards) can only be applied on the portal's own "
                f"host (qemu:///system); {self.url} is not it",
                permanent=True,
                code=ErrorCode.UNSUPPORTED,
            )
        return hostfw.HostFirewall(self._firewall_prefix)

    def forward_set(self, spec: ForwardSpec) -> str:
        """Put ``spec``'s DNAT/SNAT/accept rules in place (idempotent): "added", "changed" or "unchanged"."""
        return self._host_firewall().apply(spec)

    def forward_remove(self, key: str) -> bool:
        """Remove the rules of ``key``; whether there were any."""
        return self._host_firewall().remove(key)

    def forward_keys(self) -> set[str]:
        """The keys of every forward whose rules are on the host."""
        return self._host_firewall().keys()

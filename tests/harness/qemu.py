"""The real libvirtd with QEMU (``LIBVIRT_QEMU_URI``, qemu:///system): a storage pool with a real golden
qcow2 for this test process, an endpoint on it, and a breakable path to the daemon.

One pool per test process: several test runs share this libvirtd (engineers' runs, pytest-xdist
processes), and one process's teardown must never see another's. Pools of processes gone are swept
at start.
"""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

QEMU_URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")
LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"
POOL_PREFIX = "cc-test-pool-"
POOL_NAME = f"{POOL_PREFIX}{os.getpid()}"
POOL_DIR = Path("/var/lib/libvirt/images") / POOL_NAME
GOLDEN = "cc-test-golden.qcow2"
GOLDEN_MIB = 64


def quiet_libvirt():
    """libvirt-python with its default error printer off (the tests read the exceptions)."""
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt


def dir_pool_with_golden(uri: str, name: str, directory: Path, golden: str, mib: int):
    """Open ``uri`` and make sure the directory pool ``name`` is defined, active and holds an empty
    qcow2 ``golden`` of ``mib`` MiB. Returns (connection, pool); fails the test when libvirtd is down."""
    libvirt = quiet_libvirt()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        pytest.fail(f"the real libvirtd is not running at {uri} (make test starts it): {exc}")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        xml = f"<pool type='dir'><name>{name}</name><target><path>{directory}</path></target></pool>"
        pool = conn.storagePoolDefineXML(xml, 0)
    if not pool.isActive():
        pool.create(0)
    if not (directory / golden).exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(directory / golden), f"{mib}M"], check=True)
    pool.refresh(0)
    return conn, pool


@pytest.fixture(scope="session")
def qemu_pool():
    """This test process's directory pool on the real libvirtd, with a real (empty) golden qcow2."""
    libvirt = quiet_libvirt()
    conn, pool = dir_pool_with_golden(QEMU_URI, POOL_NAME, POOL_DIR, GOLDEN, GOLDEN_MIB)
    _sweep_pools_of_dead_processes(conn)  # ours is alive: only the pools of killed processes go
    yield {"uri": QEMU_URI, "pool": POOL_NAME, "volume": GOLDEN, "size": GOLDEN_MIB * 1024 * 1024}
    qemu_cleanup()
    with contextlib.suppress(libvirt.libvirtError):
        pool.destroy()
        pool.undefine()
    shutil.rmtree(POOL_DIR, ignore_errors=True)
    conn.close()


@pytest.fixture
def qemu_env(scenario, qemu_pool):
    """An endpoint on the real libvirtd with a platform image on the pool's golden volume and a small
    flavor (tests/compute/conftest.py ``make_env``); the pool holds only the golden before and after."""
    from tests.compute.conftest import make_env

    qemu_cleanup()
    env = make_env(
        scenario,
        url=qemu_pool["uri"],
        pool=qemu_pool["pool"],
        volume=qemu_pool["volume"],
        size_bytes=qemu_pool["size"],
        name="qemu",
    )
    yield env
    qemu_cleanup()


def qemu_cleanup(*, networks: bool = False) -> None:
    """Remove every domain whose disks live in this process's pool, and their overlays; with
    ``networks``, also the portal's tenant networks that no running domain uses.

    Only a test that pushes the demo's network to the real libvirtd asks for ``networks``: another
    test process's sweep could take away a network that one has just pushed and not yet started a
    domain on.
    """
    libvirt = quiet_libvirt()
    conn = libvirt.open(QEMU_URI)
    try:
        for dom in conn.listAllDomains(0):
            try:  # other processes create and delete domains of their own meanwhile
                xml = dom.XMLDesc(0)
                if f"{POOL_DIR}/" not in xml and f"'{POOL_NAME}'" not in xml:
                    continue
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            except libvirt.libvirtError:
                pass
        if networks:
            _remove_unused_portal_networks(conn)
        try:
            pool = conn.storagePoolLookupByName(POOL_NAME)
            pool.refresh(0)
            for vol in pool.listAllVolumes(0):
                if vol.name() != GOLDEN:
                    vol.delete(0)
        except libvirt.libvirtError:
            pass
    finally:
        conn.close()


def _remove_unused_portal_networks(conn) -> None:
    """Drop the portal's tenant networks ("ccnet-<id>") that no running domain uses.

    Tests that seed the demo on the real libvirtd push its lab network (10.20.1.0/24); a copy left
    by an earlier run under another id would hold the subnet and make the next push fail.
    """
    libvirt = quiet_libvirt()
    in_use = set()
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        with contextlib.suppress(libvirt.libvirtError):
            in_use.update(re.findall(r"<source network='([^']+)'", dom.XMLDesc(0)))
    for net in conn.listAllNetworks(0):
        try:
            if not net.name().startswith("ccnet-") or net.name() in in_use:
                continue
            if net.isActive():
                net.destroy()
            net.undefine()
        except libvirt.libvirtError:
            pass  # another process removed it meanwhile


def _sweep_pools_of_dead_processes(conn) -> None:
    """Remove the pools (and their domains and files) that killed test processes left behind."""
    libvirt = quiet_libvirt()
    for pool in conn.listAllStoragePools(0):
        name = pool.name()
        pid = name.removeprefix(POOL_PREFIX)
        if not name.startswith(POOL_PREFIX) or not pid.isdigit() or _alive(int(pid)):
            continue
        directory = Path("/var/lib/libvirt/images") / name
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                if f"{directory}/" in dom.XMLDesc(0):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        with contextlib.suppress(libvirt.libvirtError):
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pool_volumes() -> dict[str, str]:
    """{volume name: backing path} of this process's pool, as libvirt sees it now."""
    libvirt = quiet_libvirt()
    conn = libvirt.open(QEMU_URI)
    try:
        pool = conn.storagePoolLookupByName(POOL_NAME)
        pool.refresh(0)
        return {
            vol.name(): ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path", "")
            for vol in pool.listAllVolumes(0)
        }
    finally:
        conn.close()


def qemu_volumes() -> set[str]:
    """The volume names of this process's pool."""
    return set(pool_volumes())


def qemu_domains() -> set[str]:
    """The names of every domain on the daemon (other processes' too)."""
    libvirt = quiet_libvirt()
    conn = libvirt.open(QEMU_URI)
    try:
        return {d.name() for d in conn.listAllDomains(0)}
    finally:
        conn.close()


class LibvirtPath:
    """A UNIX socket that forwards to libvirtd's, which a test can cut, stall or restore.

    ``qemu+unix:///system?socket=<path>`` reaches the real daemon through it, so cutting
    it is an unreachable hypervisor, seen exactly as a remote one that went away.
    """

    def __init__(self):
        self.path = f"/tmp/cc-libvirt-{uuid.uuid4().hex[:8]}.sock"
        self.mode = "open"  # open | refuse | stall
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.path}"

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.close()
                continue
            if self.mode == "stall":
                with self._lock:
                    self._conns.append(client)  # held open, never answered
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(LIBVIRT_SOCKET)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode == "refuse":
                    break
                while self.mode == "stall":
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self):
        """Refuse new connections and break the open ones: the hypervisor is gone."""
        self.mode = "refuse"
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self):
        self.mode = "open"

    def stall(self):
        self.mode = "stall"

    def close(self):
        self.cut()
        self._server.close()
        Path(self.path).unlink(missing_ok=True)

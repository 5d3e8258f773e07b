"""Real-component fixtures of the classroom tests, as a pytest plugin (tests/conftest.py's
``pytest_plugins``): the portal under uvicorn (ASGI, for WebSockets) and a storage pool with a
golden qcow2 on the real libvirtd.

A plugin, not a conftest: the browser tests use the same session-scoped pool, and a fixture
imported into a second module would be a second copy (its own setup and teardown) in one process.
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.compute.support import dir_pool_with_golden, quiet_libvirt

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def asgi_server(transactional_db):
    """The portal's ASGI app (HTTP + WebSockets) under uvicorn on a free loopback port, on the test
    database. Yields its base URL."""
    from tests.conftest import _worker_database_url

    port = free_port()
    env = {**os.environ, "DATABASE_URL": _worker_database_url(), "DEBUG": "false"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "portal.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ws",
            "wsproto",
            "--lifespan",
            "off",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("uvicorn did not start")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- the real libvirtd -------------------------------------------------------------------------

QEMU_URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")
# One pool per test process: under pytest-xdist, another process's cleanup must never see ours.
# One pool per test process: several test runs share this libvirtd (engineers' runs, xdist workers),
# and one process's teardown must never see another's. Pools of processes gone are swept at start.
POOL_PREFIX = "cc-test-classroom-"
POOL_NAME = f"{POOL_PREFIX}{os.getpid()}"
POOL_DIR = Path("/var/lib/libvirt/images") / POOL_NAME
GOLDEN = "cc-classroom-golden.qcow2"
GOLDEN_MIB = 32


def qemu_cleanup() -> None:
    """Remove every domain whose disks live in this test run's pool, and their overlays."""
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
    import shutil

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


@pytest.fixture(scope="session")
def qemu_pool():
    """A directory pool on the real libvirtd with a real (empty) golden qcow2, for this test run."""
    libvirt = quiet_libvirt()
    conn, pool = dir_pool_with_golden(QEMU_URI, POOL_NAME, POOL_DIR, GOLDEN, GOLDEN_MIB)
    _sweep_pools_of_dead_processes(conn)  # ours is alive: only the pools of killed processes go
    yield {"uri": QEMU_URI, "pool": POOL_NAME, "volume": GOLDEN, "size": GOLDEN_MIB * 1024 * 1024}
    qemu_cleanup()
    try:
        pool.destroy()
        pool.undefine()
    except libvirt.libvirtError:
        pass
    import shutil

    shutil.rmtree(POOL_DIR, ignore_errors=True)
    conn.close()


@pytest.fixture
def qemu_env(scenario, qemu_pool):
    from tests.compute.conftest import make_env

    qemu_cleanup()
    env = make_env(
        scenario,
        url=qemu_pool["uri"],
        pool=qemu_pool["pool"],
        volume=qemu_pool["volume"],
        size_bytes=qemu_pool["size"],
        name="qemu-classroom",
        max_concurrency=4,
    )
    yield env
    qemu_cleanup()


def pool_volumes() -> dict[str, str]:
    """{volume name: backing path} of this run's pool, as libvirt sees it now."""
    import xml.etree.ElementTree as ET

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

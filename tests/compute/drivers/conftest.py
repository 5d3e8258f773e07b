"""Fixtures for the driver tests: libvirt's test driver, the real libvirtd, private vcsim instances.

Services are found through the environment:
- LIBVIRT_QEMU_URI (default qemu:///system): the real libvirtd; tests fail, not skip, without it.
- VCSIM_BIN (default tools/vcsim/bin/vcsim, built by scripts/vcsim.sh build): the simulator.
  Tests start private instances on free ports (tests/harness/vcsim.py: ``Vcsim`` and the module's
  ``vcsim``), so they never depend on the state of the shared instance that `scripts/vcsim.sh start` runs.
No database is touched.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from compute.drivers.base import DriverError
from compute.drivers.libvirt import LibvirtDriver
from compute.drivers.vcenter import VCenterDriver
from tests.harness.qemu import QEMU_URI
from tests.harness.vcsim import Vcsim

TEST_URI = "test:///default"


@pytest.fixture
def uid() -> str:
    """A short unique suffix: test:///default and the real libvirtd are shared by everything."""
    return secrets.token_hex(4)


@pytest.fixture
def cleanup() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Register undo steps; they run last-first at teardown, even after a failure, errors ignored."""
    steps: list[Callable[[], object]] = []
    yield steps.append
    for step in reversed(steps):
        with contextlib.suppress(Exception):
            step()


# ---- libvirt's test driver -----------------------------------------------------------------


@pytest.fixture
def test_driver() -> Iterator[LibvirtDriver]:
    driver = LibvirtDriver(TEST_URI)
    yield driver
    driver.close()


@pytest.fixture
def test_conn(test_driver: LibvirtDriver) -> Iterator[libvirt.virConnect]:
    """A raw connection for setting up and inspecting; closing the last one resets the state."""
    conn = libvirt.open(TEST_URI)
    yield conn
    conn.close()


@pytest.fixture
def test_golden(test_conn: libvirt.virConnect, uid: str) -> str:
    """A golden qcow2 volume in test:///default's default-pool; returns its name."""
    name = f"golden-{uid}.qcow2"
    pool = test_conn.storagePoolLookupByName("default-pool")
    pool.createXML(
        f"<volume><name>{name}</name><capacity unit='MiB'>64</capacity>"
        "<target><format type='qcow2'/></target></volume>",
        0,
    )
    return name


# ---- the real libvirtd -------------------------------------------------------------------


@pytest.fixture(scope="session")
def qemu_driver() -> Iterator[LibvirtDriver]:
    driver = LibvirtDriver(QEMU_URI)
    try:
        driver.check()
    except DriverError as exc:
        pytest.fail(
            f"libvirtd is not reachable at {QEMU_URI} ({exc.message}); start it (make test does) "
            "or point LIBVIRT_QEMU_URI at one",
            pytrace=False,
        )
    yield driver
    driver.close()


@pytest.fixture(scope="session")
def qemu_conn(qemu_driver: LibvirtDriver) -> Iterator[libvirt.virConnect]:
    conn = libvirt.open(QEMU_URI)
    yield conn
    conn.close()


class QemuPool:
    def __init__(self, conn: libvirt.virConnect, name: str, path: Path):
        self.conn = conn
        self.name = name
        self.path = path
        self.golden = "golden.qcow2"

    @property
    def pool(self) -> libvirt.virStoragePool:
        return self.conn.storagePoolLookupByName(self.name)

    def volumes(self) -> set[str]:
        self.pool.refresh(0)
        return set(self.pool.listVolumes())

    def qemu_img_info(self, volume: str) -> dict:
        out = subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(self.path / volume)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)


@pytest.fixture(scope="module")
def qemu_pool(qemu_conn: libvirt.virConnect) -> Iterator[QemuPool]:
    """A transient dir pool under a temp dir with a 64 MiB golden qcow2; all gone afterwards."""
    name = f"cc-test-{secrets.token_hex(4)}"
    path = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path / "golden.qcow2"), "64M"], check=True)
    qemu_conn.storagePoolCreateXML(
        f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>", 0
    )
    pool = QemuPool(qemu_conn, name, path)
    try:
        yield pool
    finally:
        # Domains of a failed test may still use the pool's volumes: remove them first.
        for dom in qemu_conn.listAllDomains(0):
            if f"pool='{name}'" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE):
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        with contextlib.suppress(libvirt.libvirtError):
            storage = qemu_conn.storagePoolLookupByName(name)
            for vol in storage.listAllVolumes(0):
                vol.delete(0)
            storage.destroy()
        shutil.rmtree(path, ignore_errors=True)


# ---- the vCenter simulator (the module's ``vcsim`` is tests/harness/vcsim.py's) -----------------


@pytest.fixture
def vcenter(vcsim: Vcsim) -> Iterator[VCenterDriver]:
    driver = vcsim.driver()
    yield driver
    driver.close()

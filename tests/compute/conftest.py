"""Fixtures of the compute tests: endpoints on libvirt's test driver and the real libvirtd, images, flavors.

- ``compute_env``: an endpoint on ``test:///default`` (libvirt's in-memory driver), a
  platform image with a golden volume, and a small flavor. Each test ends with every
  cached driver closed, so the next test's test driver starts empty.
- ``qemu_env``: the same on the real libvirtd (``LIBVIRT_QEMU_URI``, qemu:///system):
  a directory pool made for the test run and a real golden qcow2 made with qemu-img;
  everything the test created is removed afterwards.
- ``eager``: run tasks in-process, synchronously (for unit tests of the layer above the
  driver); end-to-end tests use the real worker of ``tests/conftest.py`` instead.
"""

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from compute import services
from compute.hypervisor import drivers_close_all
from compute.models import Desktop, Endpoint, Flavor, Image, ImageVersion
from tests.compute.support import dir_pool_with_golden, quiet_libvirt

QEMU_URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")
# One pool per test process: under pytest-xdist, another process's cleanup must never see ours.
POOL_NAME = "-".join(filter(None, ["cc-test-compute", os.environ.get("PYTEST_XDIST_WORKER")]))
POOL_DIR = Path("/var/lib/libvirt/images") / POOL_NAME
GOLDEN_MIB = 64


@dataclass
class ComputeEnv:
    endpoint: Endpoint
    image: Image
    version: ImageVersion
    flavor: Flavor


@pytest.fixture(autouse=True)
def _fresh_drivers():
    drivers_close_all()
    yield
    drivers_close_all()


def make_env(
    scenario,
    *,
    url="test:///default",
    pool="default-pool",
    volume="cc-golden.qcow2",
    name="testdrv",
    domain_type="qemu",
    size_bytes=1024**3,
    max_concurrency=4,
    retry_backoff=0.2,
    max_retries=3,
):
    endpoint = services.endpoint_register(
        actor=scenario.sysadmin,
        name=name,
        kind="libvirt",
        url=url,
        domain_type=domain_type,
        storage_pool=pool,
        max_concurrency=max_concurrency,
    )
    Endpoint.objects.filter(pk=endpoint.pk).update(retry_backoff=retry_backoff, max_retries=max_retries)
    endpoint.refresh_from_db()
    image = services.image_create(actor=scenario.sysadmin, name="Debian 12", os_type="linux")
    version = services.image_version_register(
        actor=scenario.sysadmin, image=image, endpoint=endpoint, pool=pool, volume=volume, size_bytes=size_bytes
    )
    flavor = Flavor.objects.filter(name="tiny").first() or services.flavor_create(
        actor=scenario.sysadmin, name="tiny", vcpus=1, memory_mib=128, disk_gib=1
    )
    return ComputeEnv(endpoint=endpoint, image=image, version=version, flavor=flavor)


@pytest.fixture
def compute_env(scenario) -> ComputeEnv:
    return make_env(scenario)


def desktop_of(
    tenant, *, env: ComputeEnv | None = None, owner=None, state=Desktop.State.RUNNING, course=None
) -> Desktop:
    """A desktop row (no VM) for read and isolation tests."""
    from compute.models import Cluster, Site

    if env is None:
        site, _ = Site.objects.get_or_create(slug="iso", defaults={"name": "iso"})
        cluster, _ = Cluster.objects.get_or_create(site=site, name="iso-general")
        endpoint, _ = Endpoint.objects.get_or_create(
            name="iso", defaults={"site": site, "cluster": cluster, "kind": "libvirt", "url": "test:///default"}
        )
    else:
        endpoint = env.endpoint
    return Desktop.objects.create(
        name=f"desk-{uuid.uuid4().hex[:6]}",
        vm_name=f"cc-{uuid.uuid4().hex[:10]}",
        tenant=tenant,
        owner=owner,
        course=course,
        endpoint=endpoint,
        state=state,
        power_state="running" if state == Desktop.State.RUNNING else "stopped",
        image_version=env.version if env else None,
        flavor=env.flavor if env else None,
    )


# --- the real libvirtd -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def qemu_pool():
    """A directory storage pool on the real libvirtd for this test run, with a real golden qcow2."""
    libvirt = quiet_libvirt()
    golden = POOL_DIR / "cc-test-golden.qcow2"
    conn, pool = dir_pool_with_golden(QEMU_URI, POOL_NAME, POOL_DIR, golden.name, GOLDEN_MIB)
    yield {"uri": QEMU_URI, "pool": POOL_NAME, "volume": golden.name, "size": GOLDEN_MIB * 1024 * 1024}
    # Remove every domain whose disks live in this run's pool (other suites' VMs are not ours),
    # then the pool with its volumes.
    for dom in conn.listAllDomains(0):
        try:
            ours = f"pool='{POOL_NAME}'" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        except libvirt.libvirtError:
            continue  # another suite's domain, undefined since the listing
        if ours:
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            except libvirt.libvirtError:
                pass
    try:
        pool.destroy()
        pool.undefine()
    except libvirt.libvirtError:
        pass
    shutil.rmtree(POOL_DIR, ignore_errors=True)
    conn.close()


def qemu_volumes() -> set[str]:
    libvirt = quiet_libvirt()
    conn = libvirt.open(QEMU_URI)
    try:
        pool = conn.storagePoolLookupByName(POOL_NAME)
        pool.refresh(0)
        return set(pool.listVolumes())
    finally:
        conn.close()


def qemu_domains() -> set[str]:
    libvirt = quiet_libvirt()
    conn = libvirt.open(QEMU_URI)
    try:
        return {d.name() for d in conn.listAllDomains(0)}
    finally:
        conn.close()


@pytest.fixture
def qemu_env(scenario, qemu_pool) -> ComputeEnv:
    return make_env(
        scenario,
        url=qemu_pool["uri"],
        pool=qemu_pool["pool"],
        volume=qemu_pool["volume"],
        size_bytes=qemu_pool["size"],
        name="qemu",
    )

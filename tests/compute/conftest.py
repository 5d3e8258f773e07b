"""Fixtures of the compute tests: endpoints on libvirt's test driver, images, flavors.

- ``compute_env``: an endpoint on ``test:///default`` (libvirt's in-memory driver), a
  platform image with a golden volume, and a small flavor. Each test ends with every
  cached driver closed, so the next test's test driver starts empty.
- ``qemu_env`` (tests/harness/qemu.py): the same on the real libvirtd.
- ``eager`` (tests/conftest.py): run tasks in-process, synchronously (for unit tests of the
  layer above the driver); end-to-end tests use the real worker of tests/harness/worker.py.
"""

import uuid
from dataclasses import dataclass

import pytest

from compute import services
from compute.hypervisor import drivers_close_all
from compute.models import Desktop, Endpoint, Flavor, Image, ImageVersion


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

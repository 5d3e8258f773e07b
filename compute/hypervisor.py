"""The bridge from compute's models to the drivers: a driver per endpoint per process, specs, slots.

- ``driver_for(endpoint)``: one connected driver per endpoint in each worker process,
  reused by every task (libvirt connections are thread-safe; a vCenter session is
  reused), and dropped when the endpoint's address or credentials change or the
  connection breaks.
- ``endpoint_slot(endpoint, holder)``: the per-endpoint concurrency limit. A slot is
  a lease row counted under the endpoint's row lock, so the limit holds across every
  worker process and host, needs nothing but the database, and a worker killed
  mid-task frees its slot when the lease expires. (A Celery queue per endpoint would
  need a worker per endpoint configured by hand; Redis semaphores are not available
  with the quick start's filesystem broker.)
- ``vm_spec(desktop)``: the VMSpec a desktop is created from.
"""

import atexit
import contextlib
import hashlib
import threading
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from compute.drivers import open_driver
from compute.drivers.base import BootSpec, DriverError, ErrorCode, GpuSpec, HypervisorDriver, NicSpec, VMSpec
from compute.models import Desktop, Endpoint, EndpointLease

LEASE_SECONDS = 15 * 60

_drivers: dict[int, tuple[str, HypervisorDriver]] = {}
_drivers_lock = threading.Lock()


def _fingerprint(endpoint: Endpoint) -> str:
    material = "\0".join(
        [
            endpoint.kind,
            endpoint.url,
            endpoint.username,
            endpoint.password_encrypted,
            repr(sorted(endpoint.options.items())),
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def driver_open(endpoint: Endpoint) -> HypervisorDriver:
    """A new driver for the endpoint (not cached): for checks of endpoints not yet saved."""
    return open_driver(endpoint.kind, endpoint.url, endpoint.username, endpoint.password, **endpoint.driver_options())


def driver_for(endpoint: Endpoint) -> HypervisorDriver:
    """The process's driver for this endpoint, opened on first use."""
    fingerprint = _fingerprint(endpoint)
    with _drivers_lock:
        cached = _drivers.get(endpoint.pk)
        if cached and cached[0] == fingerprint:
            driver = cached[1]
        else:
            if cached:
                with contextlib.suppress(Exception):
                    cached[1].close()
            driver = driver_open(endpoint)
            _drivers[endpoint.pk] = (fingerprint, driver)
    _test_driver_prepare(endpoint, driver)
    return driver


def driver_forget(endpoint_id: int) -> None:
    """Drop a cached driver (its connection broke, or its credentials were refused)."""
    with _drivers_lock:
        cached = _drivers.pop(endpoint_id, None)
    if cached:
        with contextlib.suppress(Exception):
            cached[1].close()


def drivers_close_all() -> None:
    for endpoint_id in list(_drivers):
        driver_forget(endpoint_id)


# Close the process's connections while the interpreter is whole: a libvirt connection left to
# the garbage collector at shutdown prints "Exception ignored in virConnect.__del__".
atexit.register(drivers_close_all)


def driver_error_note(endpoint: Endpoint, exc: DriverError) -> None:
    if exc.code in (ErrorCode.UNREACHABLE, ErrorCode.AUTH, ErrorCode.CERTIFICATE):
        driver_forget(endpoint.pk)


def _test_driver_prepare(endpoint: Endpoint, driver: HypervisorDriver) -> None:
    """libvirt's test:///default keeps its state in the process: give it our golden volumes.

    Every process (web, each worker) sees its own empty in-memory hypervisor, so the
    golden images the database knows are created as empty volumes when the process first
    connects. Only test:// URLs; a real hypervisor is never written to here.
    """
    if endpoint.kind != Endpoint.Kind.LIBVIRT or not endpoint.url.startswith("test:"):
        return
    from compute.models import ImageVersion

    versions = (
        ImageVersion.objects.filter(endpoint=endpoint).exclude(volume="").values_list("pool", "volume", "size_bytes")
    )
    for pool, volume, size in versions:
        test_volume_ensure(driver, pool=pool, volume=volume, size_bytes=size)


def test_volume_ensure(driver: HypervisorDriver, *, pool: str, volume: str, size_bytes: int) -> None:
    """Create an empty ``volume`` in ``pool`` on libvirt's test driver when it is missing (an existing one stays)."""
    driver.volume_create(pool, volume, max(1, -(-size_bytes // 1024**3)))


# --- per-endpoint concurrency --------------------------------------------------------------


class EndpointBusy(Exception):
    """Every slot of the endpoint is taken: try again shortly."""


def slot_acquire(*, endpoint_id: int, holder: str) -> None:
    """A slot of the endpoint for ``holder``, or EndpointBusy. The leases of workers that died are
    expired and cleared only when they stand in the way (every slot taken), not on every call."""
    now = timezone.now()
    with transaction.atomic():
        endpoint = Endpoint.objects.locked(endpoint_id)
        leases = EndpointLease.objects.filter(endpoint=endpoint)
        # A redelivered task (its worker died) takes its own lease back.
        if leases.filter(holder=holder).update(expires_at=now + timedelta(seconds=LEASE_SECONDS)):
            return
        if leases.count() >= endpoint.max_concurrency and (
            not leases.filter(expires_at__lt=now).delete()[0] or leases.count() >= endpoint.max_concurrency
        ):
            raise EndpointBusy(endpoint.name)
        EndpointLease.objects.create(
            endpoint=endpoint, holder=holder, expires_at=now + timedelta(seconds=LEASE_SECONDS)
        )


def slot_release(*, endpoint_id: int, holder: str) -> None:
    EndpointLease.objects.filter(endpoint_id=endpoint_id, holder=holder).delete()


@contextlib.contextmanager
def endpoint_slot(*, endpoint_id: int, holder: str):
    slot_acquire(endpoint_id=endpoint_id, holder=holder)
    try:
        yield
    finally:
        slot_release(endpoint_id=endpoint_id, holder=holder)


# --- specs ---------------------------------------------------------------------------------


def boot_spec(desktop: Desktop) -> BootSpec | None:
    """Direct kernel boot when the desktop's image carries a kernel (libvirt endpoints only)."""
    version = desktop.image_version
    if version is None or desktop.endpoint.kind != Endpoint.Kind.LIBVIRT or not version.image.kernel_path:
        return None
    image = version.image
    return BootSpec(kernel=image.kernel_path, initrd=image.initrd_path, cmdline=image.kernel_cmdline)


def vm_spec(desktop: Desktop, *, flavor=None, gpu_device: str | None = None) -> VMSpec:
    """The desktop's VMSpec; with ``flavor`` (and its ``gpu_device``), the shape a resize gives it."""
    endpoint = desktop.endpoint
    version = desktop.image_version
    flavor = flavor or desktop.flavor
    gpu_device = desktop.gpu_device if gpu_device is None else gpu_device
    gpu = None
    if flavor is not None and flavor.gpu_profile_id:
        profile = flavor.gpu_profile
        if profile.mode == "passthrough":
            gpu = GpuSpec(mode="passthrough", pci_addresses=tuple(filter(None, gpu_device.split(","))))
        else:
            gpu = GpuSpec(mode="vgpu", mdev_uuid=gpu_device, mdev_type=profile.vgpu_type)
    resized = flavor is not None and flavor != desktop.flavor
    return VMSpec(
        name=desktop.vm_name,
        vcpus=flavor.vcpus if resized else desktop.vcpus,
        memory_mib=flavor.memory_mib if resized else desktop.memory_mib,
        image_pool=version.pool if version else "",
        image_volume=version.volume if version else "",
        template=version.template if version else "",
        system_disk_gib=desktop.disk_gib,
        nics=(NicSpec(network=endpoint.default_network),) if endpoint.default_network else (),
        gpu=gpu,
        boot=boot_spec(desktop),
        domain_type=endpoint.domain_type,
        description=f"CampusCloud desktop {desktop.pk} ({desktop.tenant.slug})",
        datastore=desktop.storage_pool if endpoint.kind == Endpoint.Kind.VCENTER else "",
    )

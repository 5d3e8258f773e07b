"""Demo data of compute: a site, the endpoint of DEFAULT_HYPERVISOR_URI, a golden image and flavors.

Idempotent. The endpoint is registered the way an operator would (checked first); when the
hypervisor cannot be reached the rest is skipped and the summary says why. On a real
libvirtd the golden image is a small blank qcow2 in a directory pool made for the demo
(there is no OS to boot, but every desktop is a real QEMU domain with a VNC console);
on ``test:///default`` each process gives the in-memory driver the golden volume itself.
"""

import subprocess
from pathlib import Path

from django.conf import settings
from django.db import transaction

from common.errors import ServiceError
from compute import services
from compute.models import Endpoint, Flavor, Image, ImageVersion, Site

ENDPOINT_NAME = "default"
DEMO_POOL = "campuscloud"
DEMO_POOL_PATH = Path("/var/lib/libvirt/images/campuscloud")
GOLDEN_VOLUME = "cc-demo-golden.qcow2"
GOLDEN_MIB = 64
FLAVORS = [  # name, vCPU, MiB, GiB
    ("tiny", 1, 256, 1),
    ("small", 1, 1024, 20),
    ("medium", 2, 4096, 40),
    ("large", 4, 8192, 80),
]


def _libvirt_pool_ensure(uri: str) -> str:
    """A directory pool for the demo on a real libvirtd, with a blank golden qcow2 in it.

    The driver interface has no "define a pool" call (storage is the operator's job in
    production), so the demo does it with libvirt-python directly, only here.
    """
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(uri)
    try:
        try:
            pool = conn.storagePoolLookupByName(DEMO_POOL)
        except libvirt.libvirtError:
            DEMO_POOL_PATH.mkdir(parents=True, exist_ok=True)
            xml = f"<pool type='dir'><name>{DEMO_POOL}</name><target><path>{DEMO_POOL_PATH}</path></target></pool>"
            pool = conn.storagePoolDefineXML(xml, 0)
            pool.setAutostart(1)
        if not pool.isActive():
            pool.create(0)
        golden = DEMO_POOL_PATH / GOLDEN_VOLUME
        if not golden.exists():
            subprocess.run(  # noqa: S603 - fixed argv
                ["qemu-img", "create", "-q", "-f", "qcow2", str(golden), f"{GOLDEN_MIB}M"],  # noqa: S607
                check=True,
            )
        pool.refresh(0)
    finally:
        conn.close()
    return DEMO_POOL


def _endpoint(uri: str) -> tuple[Endpoint | None, str]:
    endpoint = Endpoint.objects.filter(url=uri, is_active=True).order_by("pk").first()
    if endpoint is not None:
        return endpoint, "exists"
    is_test = uri.startswith("test:")
    pool = "default-pool" if is_test else ""
    if uri.startswith("qemu:///"):  # a local daemon: the pool directory is on this machine
        try:
            pool = _libvirt_pool_ensure(uri)
        except Exception as exc:  # noqa: BLE001 - the summary says why, seed_demo goes on
            return None, f"skipped: cannot prepare a storage pool on {uri}: {exc}"
    site = Site.objects.filter(slug="main").first() or services.site_ensure(slug="main", name="主校区")
    name = ENDPOINT_NAME if not Endpoint.objects.filter(name=ENDPOINT_NAME).exists() else f"{ENDPOINT_NAME}-{site.pk}"
    try:
        endpoint = services.endpoint_register(
            actor=None,
            name=name,
            kind=Endpoint.Kind.LIBVIRT,
            url=uri,
            site=site,
            domain_type=Endpoint.DomainType.QEMU,  # idle KVM guests burn CPU on a small demo machine
            storage_pool=pool,
        )
    except ServiceError as exc:
        return None, f"skipped: {exc.message} {exc.detail.get('reason', '') if isinstance(exc.detail, dict) else ''}"
    return endpoint, "created"


def seed() -> dict:
    uri = settings.DEFAULT_HYPERVISOR_URI
    endpoint, endpoint_status = _endpoint(uri)
    flavors = 0
    with transaction.atomic():
        for name, vcpus, mib, gib in FLAVORS:
            _flavor, created = Flavor.objects.get_or_create(
                name=name, defaults={"vcpus": vcpus, "memory_mib": mib, "disk_gib": gib}
            )
            flavors += created
    if endpoint is None:
        return {"endpoint": endpoint_status, "flavors": flavors}
    image = Image.objects.filter(name="Debian 12 教学镜像").first() or services.image_create(
        actor=None, name="Debian 12 教学镜像", os_type="linux", description="演示用黄金镜像"
    )
    pool = endpoint.pools.order_by("-is_default").values_list("name", flat=True).first() or ""
    version = ImageVersion.objects.filter(image=image, endpoint=endpoint).first()
    if version is None:
        version = services.image_version_register(
            actor=None,
            image=image,
            endpoint=endpoint,
            pool=pool,
            volume=GOLDEN_VOLUME,
            size_bytes=GOLDEN_MIB * 1024 * 1024,
        )
    return {"endpoint": f"{endpoint.name} ({endpoint_status})", "image_version": str(version), "flavors": flavors}

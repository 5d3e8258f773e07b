"""Provisioning throughput: 20 desktops through the portal vs. plain libvirt-python, and a 1,000-VM vCenter takeover.

Usage: .venv/bin/python bench/provision.py [--desktops 20] [--threads 4] [--vms 1000]

- Portal: ``compute.services.desktop_create`` for N desktops, provisioned by a real Celery
  worker (``--pool threads -c THREADS``) on the real libvirtd (``LIBVIRT_QEMU_URI``,
  default qemu:///system); timed from the first request to the last desktop running.
- Raw: the same N linked clones + define + start with libvirt-python and THREADS threads,
  in the same run, on the same pool and golden image, of the same domain (a portal VM's XML with a new
  name, UUID, MAC and volume: bench/common.raw_domain).
- Takeover: ``import_vcenter`` of a private vcsim with VMS VMs, end to end (inventory
  through the PropertyCollector + bulk writes), then a second run that must create nothing.

It runs beside a live portal without touching it: a database and a broker key prefix of its own
(bench/env.py), for its publisher and its worker alike.
Targets (issue 4): portal/raw <= 1.15; 1,000-VM import <= 5 s.
"""

import argparse
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

POOL = "cc-bench"
POOL_DIR = Path("/var/lib/libvirt/images/cc-bench")
GOLDEN = "golden-bench.qcow2"
URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")


def django_for_worker(name: str) -> None:
    """The bench's own database and broker (bench/env.py), for it and the Celery worker it starts,
    with the bench's queues emptied (only the bench's: the key prefix is its own)."""
    common.django_on(name)
    from portal.celery import app

    app.control.purge()


def _libvirt():
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt


def _prepare_pool() -> None:
    libvirt = _libvirt()
    conn = libvirt.open(URI)
    try:
        POOL_DIR.mkdir(parents=True, exist_ok=True)
        try:
            pool = conn.storagePoolLookupByName(POOL)
        except libvirt.libvirtError:
            xml = f"<pool type='dir'><name>{POOL}</name><target><path>{POOL_DIR}</path></target></pool>"
            pool = conn.storagePoolDefineXML(xml, 0)
        if not pool.isActive():
            pool.create(0)
        golden = POOL_DIR / GOLDEN
        if not golden.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(golden), "64M"], check=True)
        pool.refresh(0)
    finally:
        conn.close()


def _cleanup_libvirt(prefixes: tuple[str, ...]) -> None:
    libvirt = _libvirt()
    conn = libvirt.open(URI)
    try:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(prefixes):
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        pool = conn.storagePoolLookupByName(POOL)
        pool.refresh(0)
        for vol in pool.listAllVolumes(0):
            if vol.name().startswith(prefixes):
                vol.delete(0)
    finally:
        conn.close()


# --- raw libvirt-python ----------------------------------------------------------------------


RAW_VOLUME = """<volume><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>
  <target><format type='qcow2'/></target>
  <backingStore><path>{backing}</path><format type='qcow2'/></backingStore></volume>"""


def raw_provision(count: int, threads: int, template: str) -> float:
    """``count`` linked clones defined from ``template`` (a portal VM's domain, common.raw_domain) and started."""
    libvirt = _libvirt()
    conn = libvirt.open(URI)
    pool = conn.storagePoolLookupByName(POOL)
    golden = pool.storageVolLookupByName(GOLDEN)
    capacity = max(golden.info()[1], 1024**3)

    def one(i: int) -> None:
        name = f"raw-{uuid.uuid4().hex[:8]}-{i}"
        vol = pool.createXML(
            RAW_VOLUME.format(name=f"{name}-system.qcow2", capacity=capacity, backing=golden.path()), 0
        )
        dom = conn.defineXML(common.raw_domain(template, name=name, volume=vol.name()))
        dom.create()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool_exec:
        list(pool_exec.map(one, range(count)))
    elapsed = time.monotonic() - started
    conn.close()
    return elapsed


def _template(desktop_id: int) -> str:
    """The domain XML of the portal's VM for ``desktop_id``: what the raw side defines again."""
    from compute.models import Desktop

    conn = _libvirt().open(URI)
    try:
        return common.domain_of(conn, Desktop.objects.get(pk=desktop_id).vm_name)
    finally:
        conn.close()


# --- through the portal -------------------------------------------------------------------------


def portal_provision(count: int, threads: int) -> tuple[float, list[int]]:
    from compute import services
    from compute.models import Endpoint, Flavor, ImageVersion
    from tenants.models import Tenant, User

    tenant = Tenant.objects.get(slug="bench")
    owners = list(User.objects.filter(username__startswith="bench-student").order_by("pk"))
    version = ImageVersion.objects.get(volume=GOLDEN)
    flavor = Flavor.objects.get(name="bench")
    endpoint = Endpoint.objects.get(name="bench")
    started = time.monotonic()
    ids = [
        services.desktop_create(
            actor=owners[i % len(owners)],
            tenant=tenant,
            image_version=version,
            flavor=flavor,
            owner=owners[i % len(owners)],
            endpoint=endpoint,
        ).pk
        for i in range(count)
    ]
    common.desktops_wait(ids, ("running",))
    return time.monotonic() - started, ids


def _fixtures(threads: int) -> None:
    from compute import services
    from compute.models import Endpoint, Flavor
    from tenants.models import Membership, Tenant, User

    tenant = Tenant.objects.create(slug="bench", name_zh="基准测试", path="/bench/")
    for i in range(20):
        user = User.objects.create(username=f"bench-student{i}")
        Membership.objects.create(user=user, tenant=tenant, role="student")
    endpoint = services.endpoint_register(
        actor=None,
        name="bench",
        kind="libvirt",
        url=URI,
        domain_type="qemu",
        storage_pool=POOL,
        max_concurrency=threads,
    )
    Endpoint.objects.filter(pk=endpoint.pk).update(options={"network": "default"})
    image = services.image_create(actor=None, name="bench")
    services.image_version_register(
        actor=None, image=image, endpoint=endpoint, pool=POOL, volume=GOLDEN, size_bytes=64 * 1024 * 1024
    )
    Flavor.objects.create(name="bench", vcpus=1, memory_mib=128, disk_gib=1)


def _delete_all(ids: list[int]) -> None:
    from compute import services
    from compute.models import Desktop

    for desktop in Desktop.objects.filter(pk__in=ids):
        services.desktop_delete(actor=desktop.owner, desktop=desktop)
    common.desktops_wait(ids, ("deleted",))


# --- vCenter takeover ----------------------------------------------------------------------------


def vcenter_takeover(vms: int) -> tuple[float, float, dict, dict]:
    from compute import services
    from compute.reconcile import vcenter_import

    subprocess.run([str(ROOT / "scripts" / "vcsim.sh"), "build"], check=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [str(ROOT / "tools" / "vcsim" / "bin" / "vcsim"), "-l", "127.0.0.1:0", "-vm", str(vms)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        boot = time.monotonic() - started
        services.endpoint_register(actor=None, name="bench-vc", kind="vcenter", url=url, username="u", password="p")
        t0 = time.monotonic()
        first = vcenter_import(actor=None, endpoint_name="bench-vc", tenant_slug="bench")
        elapsed = time.monotonic() - t0
        second = vcenter_import(actor=None, endpoint_name="bench-vc", tenant_slug="bench")
    finally:
        process.terminate()
        process.wait(timeout=10)
    return boot, elapsed, first, second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desktops", type=int, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--vms", type=int, default=1000)
    args = parser.parse_args()

    django_for_worker("provision")
    _prepare_pool()
    _cleanup_libvirt(("raw-", "cc-bench"))
    _fixtures(args.threads)
    worker = common.celery_worker(args.threads, timeout=60)
    try:
        # Warm-up: the worker's first task opens its libvirt connection.
        _seconds, warm = portal_provision(1, args.threads)
        _delete_all(warm)

        portal, ids = portal_provision(args.desktops, args.threads)
        raw = raw_provision(args.desktops, args.threads, _template(ids[0]))
        print(f"provision {args.desktops} desktops on {URI} ({args.threads} threads, TCG)")
        each = args.desktops
        print(f"  portal (services + Celery worker + driver): {portal:6.2f} s  ({portal / each:.3f} s each)")
        print(f"  raw libvirt-python:                         {raw:6.2f} s  ({raw / each:.3f} s each)")
        print(f"  ratio portal/raw: {portal / raw:.2f}  (target <= 1.15)")
        _delete_all(ids)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        _cleanup_libvirt(("raw-", "cc-bench"))

    boot, elapsed, first, second = vcenter_takeover(args.vms)
    print(f"import_vcenter of {args.vms} simulator VMs (simulator started in {boot:.1f} s)")
    print(f"  end to end: {elapsed:.2f} s (target <= 5 s); created {first['created']}, errors {len(first['errors'])}")
    print(f"  second run: created {second['created']}, unchanged {second['unchanged']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Provisioning on the multi-host testbed: N desktops spread over the three hosts through the portal vs. the same N
made by a plain libvirt-python script against the same hosts, in the same run.

Usage: .venv/bin/python bench/testbed_provision.py [--desktops 30] [--threads 6]   (root: the testbed)

- Portal: ``compute.services.desktop_create`` without naming a host, so placement (spread) chooses among the
  testbed's hosts (``host_add``: h1, h2 at site east, h3 at site west; golden image on the shared storage);
  a real Celery worker (``--pool threads -c THREADS``) on the testbed's broker provisions each desktop on its
  host's own libvirtd over qemu+tcp (linked clone, define, start). Timed from the first request to the last
  desktop running. The bench's database and broker key prefix are its own (bench/env.py).
- Raw: the same number of linked clones + define + start per host, with THREADS threads and one
  libvirt-python connection per host, the same golden image and network, and the same domain: the XML of one
  of the portal's VMs (its devices: virtio disk and NIC, guest-agent channel, VNC with tablet and video,
  balloon) with only the name, UUID, MAC and system volume changed. So the ratio is what the portal adds
  (placement, tasks, database, its libvirt calls), not what QEMU takes to start more devices.
The testbed is reused when it is up, else brought up and taken down (bench/bed.py). Target (issue 16): ≤ 1.3×.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bed, common  # noqa: E402

TARGET = 1.3
MEMORY_MIB = 64

RAW_VOLUME = """<volume><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>
  <target><format type='qcow2'/></target>
  <backingStore><path>{backing}</path><format type='qcow2'/></backingStore></volume>"""


def _libvirt():
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt


class Stage:
    """The hosts' side: a golden image on the shared storage, a dir pool of it and an isolated network on
    every host, all named after this run; ``clear`` removes them and every domain and volume of the run."""

    def __init__(self, testbed) -> None:
        uid = uuid.uuid4().hex[:6]
        self.testbed = testbed
        self.pool, self.network, self.golden = f"ccb-{uid}", f"ccbnet-{uid}", f"ccb-golden-{uid}.qcow2"
        self.bridge = f"ccb{uid}"
        self.raw_prefix = f"ccb-raw-{uid}"

    def make(self) -> None:
        self.area = self.testbed.shared_area(self.pool)  # its own directory: tests may share the testbed
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.area.dir / self.golden), "64M"], check=True)
        for host in self.testbed:
            conn = host.connect()
            try:
                conn.storagePoolCreateXML(self.area.pool_xml(self.pool), 0)
                conn.networkCreateXML(
                    f"<network><name>{self.network}</name><bridge name='{self.bridge}'/>"
                    "<ip address='192.168.215.1' netmask='255.255.255.0'/></network>"
                )
            finally:
                conn.close()

    def clear(self, vm_prefixes: tuple[str, ...]) -> None:
        libvirt = _libvirt()
        for host in self.testbed:
            conn = host.connect()
            try:
                for dom in conn.listAllDomains(0):
                    if dom.name().startswith(vm_prefixes):
                        with contextlib.suppress(libvirt.libvirtError):
                            dom.destroy()
                        with contextlib.suppress(libvirt.libvirtError):
                            dom.undefine()
                for kind, name in (("network", self.network), ("storagePool", self.pool)):
                    with contextlib.suppress(libvirt.libvirtError):
                        getattr(conn, f"{kind}LookupByName")(name).destroy()
            finally:
                conn.close()
        self.area.remove()


# --- through the portal -------------------------------------------------------------------------


def _fixtures(testbed, stage: Stage, count: int, threads: int) -> dict:
    from compute import services
    from compute.models import Endpoint, Flavor, Host
    from tenants.models import Membership, Tenant, User
    from tenants.roles import TenantRole

    hosts = bed.add_hosts(testbed, stage.pool)
    Endpoint.objects.update(options={"network": stage.network}, max_concurrency=threads)
    tenant = Tenant.objects.create(slug="bench", name_zh="基准测试", path="/bench/")
    owners = []
    for i in range(count):
        user = User.objects.create(username=f"bench-student{i}")
        Membership.objects.create(user=user, tenant=tenant, role=TenantRole.STUDENT)
        owners.append(user)
    image = services.image_create(actor=None, name="bench", os_type="linux")
    versions = {}
    for site in sorted({h.site for h in testbed}):
        first = Host.objects.get(name=next(h.name for h in testbed if h.site == site))
        versions[site] = services.image_version_register(
            actor=None, image=image, endpoint=first.endpoint, pool=stage.pool, volume=stage.golden,
            size_bytes=64 * 1024**2,
        )  # fmt: skip
    flavor = Flavor.objects.create(name="bench", vcpus=1, memory_mib=MEMORY_MIB, disk_gib=1)
    # One desktop per host for each turn round the sites' hosts: the spread fills every host alike.
    order = [host.site for host in testbed]
    return {"tenant": tenant, "owners": owners, "versions": versions, "flavor": flavor, "order": order, "hosts": hosts}


def portal_provision(world: dict, count: int) -> tuple[float, list[int], dict[str, int]]:
    from django.db.models import Count

    from compute import services
    from compute.models import Desktop

    owners, order = world["owners"], world["order"]
    started = time.monotonic()
    ids = [
        services.desktop_create(
            actor=owners[i % len(owners)],
            tenant=world["tenant"],
            image_version=world["versions"][order[i % len(order)]],
            flavor=world["flavor"],
            owner=owners[i % len(owners)],
        ).pk
        for i in range(count)
    ]
    common.desktops_wait(ids, ("running",), timeout=600, poll=0.05)
    elapsed = time.monotonic() - started
    per_host = dict(Desktop.objects.filter(pk__in=ids).values_list("host__name").annotate(n=Count("id")))
    return elapsed, ids, per_host


def _delete_all(ids: list[int]) -> None:
    from compute import services
    from compute.models import Desktop

    for desktop in Desktop.objects.filter(pk__in=ids).select_related("owner"):
        services.desktop_delete(actor=desktop.owner, desktop=desktop)
    common.desktops_wait(ids, ("deleted",), timeout=600, poll=0.05)


# --- raw libvirt-python ----------------------------------------------------------------------------


def portal_domain(testbed, desktop_id: int) -> str:
    """The inactive domain XML of a VM the portal made, read from its host (before the desktop is deleted)."""
    from compute.models import Desktop

    desktop = Desktop.objects.select_related("host").get(pk=desktop_id)
    conn = testbed[desktop.host.name].connect()
    try:
        return common.domain_of(conn, desktop.vm_name)
    finally:
        conn.close()


def raw_provision(testbed, stage: Stage, per_host: dict[str, int], threads: int, template: str) -> float:
    """The same VMs per host with libvirt-python alone: one connection per host, ``threads`` threads in all."""
    conns = {host.name: host.connect() for host in testbed}
    try:
        pools = {name: conn.storagePoolLookupByName(stage.pool) for name, conn in conns.items()}
        for pool in pools.values():
            pool.refresh(0)
        golden = pools[testbed.hosts[0].name].storageVolLookupByName(stage.golden)
        capacity, backing = max(golden.info()[1], 1024**3), golden.path()
        jobs = [name for name, n in sorted(per_host.items()) for _ in range(n)]

        def one(i: int) -> None:
            host = jobs[i]
            name = f"{stage.raw_prefix}-{i}"
            vol = pools[host].createXML(
                RAW_VOLUME.format(name=f"{name}-system.qcow2", capacity=capacity, backing=backing), 0
            )
            conns[host].defineXML(common.raw_domain(template, name=name, volume=vol.name())).create()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=threads) as pool_exec:
            list(pool_exec.map(one, range(len(jobs))))
        return time.monotonic() - started
    finally:
        for conn in conns.values():
            conn.close()


def run(count: int, threads: int) -> dict:
    with bed.testbed() as testbed:
        os.environ["CELERY_BROKER_URL"] = testbed.broker_url  # the testbed's own Redis (bench/env.py prefixes it)
        common.django_on("testbed_provision")
        from portal.celery import app

        app.control.purge()
        stage = Stage(testbed)
        stage.make()
        worker = None
        try:
            world = _fixtures(testbed, stage, count, threads)
            worker = common.celery_worker(threads)
            # Warm-up: one desktop per host, so every worker thread's first task is not the one timed.
            _seconds, warm, _hosts = portal_provision(world, len(testbed.hosts))
            _delete_all(warm)
            portal, ids, per_host = portal_provision(world, count)
            template = portal_domain(testbed, ids[0])
            _delete_all(ids)
            raw = raw_provision(testbed, stage, per_host, threads, template)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=60)
            stage.clear(("cc-bench", stage.raw_prefix))
    return {"count": count, "threads": threads, "portal": portal, "raw": raw, "per_host": per_host}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desktops", type=int, default=30)
    parser.add_argument("--threads", type=int, default=6)
    args = parser.parse_args()
    result = run(args.desktops, args.threads)
    count, portal, raw = result["count"], result["portal"], result["raw"]
    spread = ", ".join(f"{name}: {n}" for name, n in sorted(result["per_host"].items()))
    print(f"provision {count} desktops over the testbed's hosts ({spread}; {result['threads']} threads, TCG)")
    print(f"  portal (placement, Celery worker, qemu+tcp): {portal:6.2f} s  ({portal / count:.3f} s each)")
    print(f"  raw libvirt-python, same hosts and counts:   {raw:6.2f} s  ({raw / count:.3f} s each)")
    verdict = "OK" if portal / raw <= TARGET else "OVER"
    print(f"  ratio portal/raw: {portal / raw:.2f}  (target <= {TARGET}: {verdict})")
    common.print_load()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale model (issue 16.7): 50 simulated hosts on two sites, 5,000 desktops placed, a class-start storm.

Usage: .venv/bin/python bench/scale.py [--hosts 50] [--desktops 5000] [--storm 300] [--workers 1,2]

- Hosts: libvirt's test driver with a host definition file per host (``test:///<dir>/hN.xml``: CPUs,
  memory, a storage pool, and the storm's domains, defined and shut off), added with ``host_add``,
  half on site ``east``, half on ``west``.
- Placement: DESKTOPS desktops placed by ``compute.placement.place`` (spread policy), alternating sites;
  prints the balance (max/min placed memory per host; target <= 1.2) and the queries per placement for
  the first and the last hundred (they must not grow with the number of desktops).
- Storm: STORM stopped desktops powered on at once (``desktops_power``), their tasks run by real Celery
  workers (``--pool prefork -c N`` for each N of --workers); prints the time to all running (target
  <= 30 s with 2 processes) and the portal's queries per power-on.

It runs beside a live portal without touching it: a database (``cc_bench_scale``) and a broker key
prefix of its own, for its publisher and its workers alike (bench/env.py).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

HOST_CPUS = 32
HOST_MEMORY_KIB = 256 * 1024 * 1024


def host_file(directory: Path, index: int, storm_names: list[str]) -> Path:
    """A test-driver host: CPUs, memory, NUMA, a pool, and the storm's domains (shut off)."""
    domains = "".join(
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>2048</memory><vcpu>2</vcpu>"
        "<os><type>hvm</type></os></domain>"
        for name in storm_names
    )
    path = directory / f"h{index}.xml"
    path.write_text(
        f"""<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><active>{HOST_CPUS}</active><max>{HOST_CPUS}</max>
    <nodes>2</nodes><sockets>1</sockets><cores>{HOST_CPUS // 2}</cores><threads>1</threads></cpu>
  <memory>{HOST_MEMORY_KIB}</memory>
  <pool type='dir'><name>default</name><target><path>/default-pool</path></target></pool>
  {domains}
</node>"""
    )
    return path


def _queries(fn) -> tuple[object, int]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()  # the log keeps 9,000 queries: a full one would count nothing
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    return result, len(ctx.captured_queries)


def add_hosts(directory: Path, count: int, storm: int) -> list:
    from compute import services

    per_host = -(-storm // count)
    hosts = []
    for i in range(count):
        names = [f"storm-{i}-{j}" for j in range(per_host)]
        uri = f"test://{host_file(directory, i, names)}"
        site = "east" if i < count // 2 else "west"
        hosts.append(
            services.host_add(
                actor=None,
                name=f"h{i}",
                uri=uri,
                site=site,
                cluster=f"{site}-general",
                address=f"10.250.{i // 200}.{i % 200 + 1}",
                domain_type="qemu",
            )
        )
    return hosts


def place_desktops(count: int, tenant, flavor) -> dict:
    from compute.models import Desktop, Site
    from compute.placement import place

    sites = list(Site.objects.order_by("slug"))
    per_query: list[int] = []
    started = time.monotonic()
    for i in range(count):
        placement, queries = _queries(lambda i=i: place(flavor=flavor, image_version=None, site=sites[i % 2]))
        per_query.append(queries)
        Desktop.objects.create(
            name=f"d{i}",
            vm_name=f"cc-bench-{i}",
            tenant=tenant,
            flavor=flavor,
            endpoint=placement.endpoint,
            host=placement.host,
            vcpus=flavor.vcpus,
            memory_mib=flavor.memory_mib,
            state=Desktop.State.STOPPED,
            power_state="stopped",
        )
    seconds = time.monotonic() - started
    return {"seconds": seconds, "first": sum(per_query[:100]) / 100, "last": sum(per_query[-100:]) / 100}


def balance() -> dict:
    from django.db.models import Q, Sum

    from compute.models import Desktop, Host

    loads = {}
    for host in Host.objects.select_related("endpoint__site").annotate(
        mib=Sum("desktops__memory_mib", filter=~Q(desktops__state=Desktop.State.DELETED), default=0)
    ):
        loads.setdefault(host.endpoint.site.slug, []).append(host.mib)
    return {site: (max(v), min(v), max(v) / max(1, min(v))) for site, v in loads.items()}


def storm(count: int, tenant, flavor, hosts, workers: int) -> dict:
    from compute import services
    from compute.models import Desktop

    Desktop.objects.filter(name__startswith="storm-").delete()
    per_host = -(-count // len(hosts))
    rows = []
    for i in range(count):
        host = hosts[i % len(hosts)]
        rows.append(
            Desktop(
                name=f"storm-{i}",
                vm_name=f"storm-{i % len(hosts)}-{i // len(hosts) % per_host}",
                tenant=tenant,
                flavor=flavor,
                endpoint=host.endpoint,
                host=host,
                vcpus=flavor.vcpus,
                memory_mib=flavor.memory_mib,
                state=Desktop.State.STOPPED,
                power_state="stopped",
            )
        )
    Desktop.objects.bulk_create(rows)
    env = dict(os.environ)  # the bench's own database and broker prefix (bench/env.py)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "hypervisor", "-c", str(workers)]
        + ["--loglevel", "WARNING", "--without-gossip", "--without-mingle", "-n", f"scale{workers}@%h"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # the worker connects
        ids = list(Desktop.objects.filter(name__startswith="storm-").values_list("pk", flat=True))
        started = time.monotonic()
        _changed, queries = _queries(lambda: services.desktops_power(actor=None, desktops=ids, verb="start"))
        deadline = started + 300
        while time.monotonic() < deadline:
            running = Desktop.objects.filter(pk__in=ids, state=Desktop.State.RUNNING).count()
            if running == len(ids):
                break
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    return {"seconds": seconds, "running": running, "queries_per_power_on": queries / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--desktops", type=int, default=5000)
    parser.add_argument("--storm", type=int, default=300)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    common.django_on("scale")
    from compute.models import Cluster, Flavor
    from tenants.models import Tenant

    tenant = Tenant.objects.create(slug="bench", name_zh="压测学院")
    flavor = Flavor.objects.create(name="lab", vcpus=2, memory_mib=2048, disk_gib=20)
    with tempfile.TemporaryDirectory(prefix="cc-scale-") as directory:
        started = time.monotonic()
        hosts = add_hosts(Path(directory), args.hosts, args.storm)
        print(f"hosts: {len(hosts)} added in {time.monotonic() - started:.1f} s")
        Cluster.objects.update(cpu_overcommit=16, memory_overcommit=1)
        placed = place_desktops(args.desktops, tenant, flavor)
        print(
            f"placement: {args.desktops} desktops in {placed['seconds']:.1f} s; queries per placement "
            f"{placed['first']:.1f} (first 100) / {placed['last']:.1f} (last 100)"
        )
        for site, (high, low, ratio) in sorted(balance().items()):
            print(f"balance {site}: max {high} MiB / min {low} MiB per host = {ratio:.3f} (target <= 1.2)")
        for workers in [int(w) for w in args.workers.split(",") if w]:
            result = storm(args.storm, tenant, flavor, hosts, workers)
            print(
                f"storm ({workers} worker processes): {result['running']}/{args.storm} running in "
                f"{result['seconds']:.1f} s (target <= 30 s with 2); portal queries per power-on "
                f"{result['queries_per_power_on']:.1f}"
            )


if __name__ == "__main__":
    main()

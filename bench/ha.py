"""Migration and HA on the multi-host testbed (issue 17): one function per part, run alone or together.

Usage: .venv/bin/python bench/ha.py [--part migration|drill] [--desktops 10] [--drill-desktops 3]
(as root: the testbed is brought up for the run, as for the tests; TESTBED_* name another one.)
Each part prints its numbers and one line per target, OK or not OK; the exit status is 1 when a target is missed.

- ``migration``: N desktops made by the portal on cluster east (h1, h2) with shared storage (the
  testbed's shared directory), then each live-migrated by ``desktop_migrate`` to the other host, one
  after the other, each to the end. Prints the total time and the mean and max downtime libvirt
  reported (the completed job's statistics on the target). Target: an idle desktop's downtime
  <= 500 ms.
- ``drill``: the HA drill of bench/ha_drill.py (``drill()``): a host of a three-host testbed of its own is
  lost; seconds from the failure to fenced through its BMC (target <= 30 s) and to every desktop of it
  running on another host with its MAC and IP (target <= 60 s). It runs in a process of its own (spawned),
  so it has its own database: the migration part's hosts are not in its cluster.

It runs beside a live portal without touching it: a database and a broker key prefix of its own
(bench/env.py). Celery tasks run in this process (eager), so no worker is needed.
"""

import argparse
import contextlib
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

DOWNTIME_TARGET_MS = 500


def _setup(bed, uid: str, made: dict) -> None:
    """Hosts h1 and h2 as compute nodes with shared storage, a network on both, a golden image, a flavor."""
    from compute import services
    from compute.models import Endpoint, Host
    from tests.scenario import scenario_build, scenario_load

    scenario_build()  # the tests' tenants and people, on the bench's own database
    scenario = scenario_load()
    admin, tenant = scenario.sysadmin, scenario.tenant_a
    network, golden, pool = made["network"], made["golden"], made["pool"]
    area = made["area"] = bed.shared_area(pool)  # a pool's directory of its own: tests may share the testbed
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(area.dir / golden), "64M"], check=True)
    for name in ("h1", "h2"):
        host = bed[name]
        conn = host.connect()
        try:
            conn.networkCreateXML(
                f"<network><name>{network}</name><bridge name='bm{uid}'/>"
                "<ip address='192.168.216.1' netmask='255.255.255.0'/></network>"
            )
        finally:
            conn.close()
        services.host_add(
            actor=None,
            name=name,
            uri=host.uri,
            site=host.site,
            cluster=f"{host.site}-general",
            domain_type="qemu",
            max_concurrency=8,
        )
    services.shared_storage_set(
        actor=None,
        site="east",
        cluster="east-general",
        pool=pool,
        kind="dir",
        path=area.path,
        unsafe_migration=True,
    )
    Endpoint.objects.update(options={"network": network})
    image = services.image_create(actor=admin, name="bench", os_type="linux")
    version = services.image_version_register(
        actor=admin,
        image=image,
        endpoint=Host.objects.get(name="h1").endpoint,
        pool=pool,
        volume=golden,
        size_bytes=64 * 1024**2,
    )
    flavor = services.flavor_create(actor=admin, name=f"bench-{uid}", vcpus=1, memory_mib=64, disk_gib=1)
    made.update(admin=admin, owner=scenario.student, tenant=tenant, version=version, flavor=flavor)


def _cleanup(bed, made: dict) -> None:
    import libvirt

    from compute.hypervisor import drivers_close_all
    from compute.models import Desktop

    drivers_close_all()
    ours = set(Desktop.objects.values_list("vm_name", flat=True))
    for name in ("h1", "h2"):
        conn = bed[name].connect()
        try:
            for dom in conn.listAllDomains(0):
                if dom.name() in ours:
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefine()
            with contextlib.suppress(libvirt.libvirtError):
                conn.networkLookupByName(made["network"]).destroy()
            with contextlib.suppress(libvirt.libvirtError):  # the shared pool (its directory goes below)
                pool = conn.storagePoolLookupByName(made["pool"])
                pool.destroy()
                pool.undefine()
        finally:
            conn.close()
    if "area" in made:
        made["area"].remove()


def migration(count: int) -> dict:
    """Live-migrate ``count`` running desktops from one east host to the other; the numbers libvirt gave."""
    from tests.harness.testbed import leased

    with leased() as bed:  # up for the bench (and down after it, unless someone else holds it)
        return _migrate_all(bed, count)


def _migrate_all(bed, count: int) -> dict:
    from compute import services
    from compute.models import Desktop, DesktopMigration, Host

    uid = uuid.uuid4().hex[:6]
    made: dict = {"network": f"bmig-{uid}", "golden": f"golden-{uid}.qcow2", "pool": f"bmsh-{uid}"}
    try:
        _setup(bed, uid, made)
        desktops = [
            services.desktop_create(
                actor=made["admin"],
                tenant=made["tenant"],
                image_version=made["version"],
                flavor=made["flavor"],
                owner=made["owner"],
                name=f"bm-{i}",
            )
            for i in range(count)
        ]
        hosts = {h.name: h for h in Host.objects.filter(name__in=("h1", "h2"))}
        started = time.monotonic()
        for desktop in desktops:
            desktop.refresh_from_db()
            if desktop.state != Desktop.State.RUNNING:
                raise SystemExit(f"desktop {desktop.name} is {desktop.state}: {desktop.error_reason}")
            target = hosts["h2" if desktop.host.name == "h1" else "h1"]
            services.desktop_migrate(actor=made["admin"], desktop=desktop, host=target)
        total = time.monotonic() - started
        rows = list(DesktopMigration.objects.filter(desktop__in=desktops))
        failed = [f"{r.desktop_id}: {r.error}" for r in rows if r.state != DesktopMigration.State.DONE]
        downtimes = [r.downtime_ms for r in rows if r.downtime_ms is not None]
        return {
            "desktops": count,
            "migrated": len(rows) - len(failed),
            "failed": failed,
            "total_seconds": round(total, 2),
            "downtime_mean_ms": round(statistics.mean(downtimes), 1) if downtimes else None,
            "downtime_max_ms": max(downtimes) if downtimes else None,
            "duration_mean_ms": round(statistics.mean(r.duration_ms for r in rows if r.duration_ms), 1)
            if any(r.duration_ms for r in rows)
            else None,
        }
    finally:
        _cleanup(bed, made)


def ha_drill(count: int) -> dict:
    """bench/ha_drill.py's ``drill()`` in a spawned process: Django there is set up on the drill's own database."""
    from bench.ha_drill import drill

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(drill, (count,))


PARTS = {"migration": migration, "drill": ha_drill}


def _verdict(ok: bool) -> str:
    return "OK" if ok else "not OK"


def _report(name: str, result: dict) -> bool:
    """The part's summary and one line per target; whether every target was met."""
    from bench.ha_drill import TARGET_ALL, TARGET_FENCED

    if name == "migration":
        ok = not result["failed"] and (result["downtime_max_ms"] or 0) <= DOWNTIME_TARGET_MS
        print(
            f"live-migrated {result['migrated']}/{result['desktops']} desktops in {result['total_seconds']} s; "
            f"downtime mean {result['downtime_mean_ms']} ms, max {result['downtime_max_ms']} ms "
            f"(target <= {DOWNTIME_TARGET_MS} ms): {_verdict(ok)}"
        )
        return ok
    fenced, everything = result["fenced_s"], result["all_running_elsewhere_s"]
    fenced_ok = fenced is not None and fenced <= TARGET_FENCED
    all_ok = everything is not None and everything <= TARGET_ALL
    print(f"HA drill: {result['desktops']} desktops on the lost host, detection {result['detection_s']} s")
    print(f"  failure -> fenced: {fenced} s (target <= {TARGET_FENCED:.0f} s): {_verdict(fenced_ok)}")
    print(
        f"  failure -> all running elsewhere (same IP/MAC): {everything} s "
        f"(target <= {TARGET_ALL:.0f} s): {_verdict(all_ok)}"
    )
    return fenced_ok and all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--desktops", type=int, default=10, help="desktops live-migrated")
    parser.add_argument("--drill-desktops", type=int, default=3, help="desktops on the host the drill loses")
    args = parser.parse_args()
    common.django_on("ha")
    from portal.celery import app

    app.conf.task_always_eager = True  # tasks run here, on the bench's database
    common.print_load()
    ok = True
    for name, part in PARTS.items():
        if args.part not in (name, "all"):
            continue
        result = part(args.drill_desktops if name == "drill" else args.desktops)
        print(f"{name}: {json.dumps(result, ensure_ascii=False)}")
        ok = _report(name, result) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Class throughput: a 60-seat course pool from approval to all running, and 60 power-ons for a class.

Usage: .venv/bin/python bench/classroom.py [--seats 60] [--threads 4] [--pool prefork|threads] [--workers site|one]

- Portal provisioning: the teacher's course-desktop request is approved; the fulfiller's task
  creates the pool (one desktop per roster student) and real Celery workers provision them on the
  real libvirtd; timed from the approval to the last desktop running. ``--workers site`` (the default)
  runs them as the README deploys them: the hypervisor queue's worker beside the hypervisor with THREADS
  threads (``--pool threads``; ``--pool prefork`` as the Procfile runs it), and the control plane's worker
  (queue ``default``, where the approval's fulfilment runs) with one. ``--workers one``: a single worker
  with THREADS threads takes both queues, so the fulfilment holds one of the THREADS while it writes the
  seats (the set-up of the benches before session 8).
- Portal power-on: the pool is stopped, then the schedule's beat task runs at a class's lead
  time (the clock driven by time-machine); timed until every desktop runs again.
- Raw baselines, in the same run, on the same pool and golden image, of the same domain as a seat's
  (bench/common.raw_domain): SEATS clone+define+start with libvirt-python and THREADS threads; then SEATS
  power-ons of stopped domains.
- The worker's peak memory (VmHWM, its pool processes added) is printed too.

Its own database and broker key prefix (bench/env.py), beside a live portal. Targets (issue 5): both ≤ 1.2 × raw.
"""

import argparse
import contextlib
import datetime
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402 - after the path is set
from bench import provision as bp  # noqa: E402

# Its own pool, domain and tenant names: bench/provision.py may run at the same time on the same
# libvirtd, and neither bench's cleanup may touch the other's domains ("cc-bench", "raw-").
bp.POOL = "cc-clsbench"
bp.POOL_DIR = Path("/var/lib/libvirt/images") / bp.POOL
TENANT = "clsbench"  # portal domains are "cc-clsbench-<student>-<hex>"
RAW = "clsraw-"
PREFIXES = (RAW, f"cc-{TENANT}")
MONDAY = datetime.date(2026, 11, 30)


def _fixtures(seats: int, threads: int):
    from django.utils import timezone

    from compute import services
    from compute.models import Cluster, Endpoint, Flavor
    from tenants.models import ClassTime, Course, Membership, RosterEntry, Tenant, User

    tenant = Tenant.objects.create(slug=TENANT, name_zh="基准测试", path=f"/{TENANT}/")
    admin = User.objects.create(username="bench-admin")
    Membership.objects.create(user=admin, tenant=tenant, role="tenant_admin")
    teacher = User.objects.create(username="bench-teacher")
    Membership.objects.create(user=teacher, tenant=tenant, role="teacher")
    today = timezone.localdate()
    course = Course.objects.create(
        tenant=tenant,
        code="BENCH1",
        name="bench",
        teacher=teacher,
        term_start=min(MONDAY, today) - datetime.timedelta(days=30),
        term_end=max(MONDAY, today) + datetime.timedelta(days=30),
    )
    ClassTime.objects.create(course=course, weekday=1, start_time=datetime.time(10), end_time=datetime.time(11, 40))
    # A class all of today too: a pool follows its schedule from creation, so its seats are made running only
    # in class time (the worker decides with the real clock); the power-on below is timed at Monday's lead.
    if today.isoweekday() != 1:
        ClassTime.objects.create(
            course=course, weekday=today.isoweekday(), start_time=datetime.time(0), end_time=datetime.time(23, 59)
        )
    for i in range(seats):
        user = User.objects.create(username=f"bench-s{i:03d}")
        Membership.objects.create(user=user, tenant=tenant, role="student")
        RosterEntry.objects.create(course=course, user=user, student_number=f"B{i:05d}")
    endpoint = services.endpoint_register(
        actor=None,
        name="bench",
        kind="libvirt",
        url=bp.URI,
        domain_type="qemu",
        storage_pool=bp.POOL,
        max_concurrency=threads,
    )
    Endpoint.objects.filter(pk=endpoint.pk).update(options={"network": "default"})
    # Sixty idle TCG guests with no OS on a 2-core host: overcommit as the demo does.
    Cluster.objects.filter(pk=endpoint.cluster_id).update(cpu_overcommit=100, memory_overcommit=4)
    image = services.image_create(actor=None, name="bench")
    version = services.image_version_register(
        actor=None, image=image, endpoint=endpoint, pool=bp.POOL, volume=bp.GOLDEN, size_bytes=64 * 1024 * 1024
    )
    flavor = Flavor.objects.create(name="bench", vcpus=1, memory_mib=128, disk_gib=1)
    return course, teacher, admin, version, flavor


def _pool_desktops(course) -> list[int]:
    from compute.models import Desktop

    return list(Desktop.objects.filter(seat__pool__course=course).values_list("pk", flat=True))


def _wait_pool(course, seats: int, timeout: float = 600) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(_pool_desktops(course)) < seats:
        if time.monotonic() > deadline:
            raise SystemExit("the pool was not created in time")
        time.sleep(0.05)
    return _pool_desktops(course)


def raw_provision(count: int, threads: int, template: str) -> float:
    """SEATS linked clones defined and started with libvirt-python and THREADS threads (timed)."""
    libvirt = bp._libvirt()  # noqa: SLF001
    conn = libvirt.open(bp.URI)
    pool = conn.storagePoolLookupByName(bp.POOL)
    golden = pool.storageVolLookupByName(bp.GOLDEN)
    capacity = max(golden.info()[1], 1024**3)

    def one(i: int) -> None:
        name = f"{RAW}{uuid.uuid4().hex[:8]}-{i}"
        volume = bp.RAW_VOLUME.format(name=f"{name}-system.qcow2", capacity=capacity, backing=golden.path())
        vol = pool.createXML(volume, 0)
        conn.defineXML(common.raw_domain(template, name=name, volume=vol.name())).create()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        list(executor.map(one, range(count)))
    elapsed = time.monotonic() - started
    conn.close()
    return elapsed


def raw_power_on(count: int, threads: int, template: str) -> float:
    """SEATS raw domains made, stopped, then started again with THREADS threads (timed)."""
    raw_provision(count, threads, template)
    libvirt = bp._libvirt()  # noqa: SLF001
    conn = libvirt.open(bp.URI)
    doms = [d for d in conn.listAllDomains(0) if d.name().startswith(RAW)]
    _destroy_parallel((RAW,))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        list(executor.map(lambda dom: dom.create(), doms))
    elapsed = time.monotonic() - started
    conn.close()
    return elapsed


def _destroy_parallel(prefixes: tuple[str, ...], threads: int = 8) -> None:
    """Power off this bench's domains concurrently: one at a time, 60 destroys take ~100 s here,
    which made a run take ten minutes and left the machine's load changing between phases."""
    libvirt = bp._libvirt()  # noqa: SLF001
    conn = libvirt.open(bp.URI)
    try:
        doms = [
            d for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE) if d.name().startswith(prefixes)
        ]

        def destroy(dom) -> None:
            with contextlib.suppress(libvirt.libvirtError):  # gone meanwhile
                dom.destroy()

        with ThreadPoolExecutor(max_workers=threads) as executor:
            list(executor.map(destroy, doms))
    finally:
        conn.close()


def _clean() -> None:
    """Remove this bench's domains and volumes, then make sure the golden image is there."""
    bp._prepare_pool()  # noqa: SLF001
    _destroy_parallel(PREFIXES)
    bp._cleanup_libvirt(PREFIXES)  # noqa: SLF001
    bp._prepare_pool()  # noqa: SLF001


def _peak_rss_mib(pid: int) -> float:
    """The worker's peak resident memory (VmHWM), its pool processes' added (prefork)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for process in (pid, *map(int, children)):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def _workers(args) -> list:
    """The portal's Celery workers: the first provisions (its peak memory is reported)."""
    if args.workers == "one":
        return [common.celery_worker(args.threads, pool=args.pool, timeout=60)]
    site = common.celery_worker(args.threads, pool=args.pool, timeout=60, queues="hypervisor")
    control = common.celery_worker(1, timeout=60, queues="default")
    return [site, control]


def _describe(args) -> str:
    if args.workers == "one":
        return f"one worker {args.pool} x{args.threads} (both queues)"
    return f"hypervisor worker {args.pool} x{args.threads} + control worker x1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=60)
    parser.add_argument("--threads", type=int, default=4, help="worker processes or threads, and raw threads")
    parser.add_argument(
        "--pool", choices=["threads", "prefork"], default="threads", help="the worker's pool (the Procfile's: prefork)"
    )
    parser.add_argument(
        "--workers",
        choices=["site", "one"],
        default="site",
        help="site: a hypervisor-queue worker and a control-plane worker, as deployed; one: one worker for both",
    )
    args = parser.parse_args()

    bp.django_for_worker("classroom")
    import time_machine
    from django.utils import timezone

    from compute.classroom import services
    from compute.classroom.tasks import schedule_tick
    from tenants.services import request_approve

    _clean()
    course, teacher, admin, version, flavor = _fixtures(args.seats, args.threads)
    workers = _workers(args)
    worker = workers[0]
    try:
        request = services.course_request_submit(actor=teacher, course=course, image_version=version, flavor=flavor)
        started = time.monotonic()
        request_approve(actor=admin, request=request)
        ids = _wait_pool(course, args.seats)
        rows = time.monotonic() - started
        print(f"  [progress] approval -> all {args.seats} desktops requested: {rows:.2f} s", flush=True)
        common.desktops_wait(ids, ("running",), timeout=900)
        provision = time.monotonic() - started
        print(f"  [progress] approval -> {args.seats} running: {provision:.2f} s", flush=True)

        pool = course.desktop_pools.get()
        services.pool_power(actor=None, pool=pool, verb="stop")
        common.desktops_wait(ids, ("stopped",), timeout=600)
        tz = timezone.get_current_timezone()
        lead = datetime.datetime.combine(MONDAY, datetime.time(9, 50), tzinfo=tz)
        started = time.monotonic()
        with time_machine.travel(lead, tick=False):
            schedule_tick.apply()
        common.desktops_wait(ids, ("running",), timeout=600)
        power_on = time.monotonic() - started
        print(f"  [progress] class power-on of {args.seats}: {power_on:.2f} s", flush=True)
        peak = _peak_rss_mib(worker.pid)
        template = bp._template(ids[0])  # noqa: SLF001 - the raw side starts the same VMs

        services.pool_power(actor=None, pool=pool, verb="stop")
        common.desktops_wait(ids, ("stopped",), timeout=600)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=30)
        _clean()

    raw_seconds = raw_provision(args.seats, args.threads, template)
    _clean()
    raw_on = raw_power_on(args.seats, args.threads, template)
    _clean()

    n = args.seats
    worker_kind = f"{_describe(args)}, raw {args.threads} threads"
    print(f"course pool of {n} seats on {bp.URI} ({worker_kind}, TCG), run {uuid.uuid4().hex[:6]}")
    print(f"  approval -> all running (portal):  {provision:6.2f} s  ({provision / n:.3f} s each)")
    print(f"  clone+define+start (raw):           {raw_seconds:6.2f} s  ({raw_seconds / n:.3f} s each)")
    print(f"  ratio portal/raw: {provision / raw_seconds:.2f}  (target <= 1.2)")
    print(f"  power on for a class (portal):      {power_on:6.2f} s  ({power_on / n:.3f} s each)")
    print(f"  power on (raw):                     {raw_on:6.2f} s  ({raw_on / n:.3f} s each)")
    print(f"  ratio portal/raw: {power_on / raw_on:.2f}  (target <= 1.2)")
    print(f"  worker peak memory (VmHWM): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

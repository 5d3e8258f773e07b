"""What the benches share: a database and broker of their own (bench/env.py), Django set up on them, a free
loopback port, the portal served by uvicorn as the Procfile serves it, a Celery worker of the bench's own, waiting
for desktops to reach a state, and a line on how busy the machine is."""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench.env import isolate  # noqa: E402


def django_on(name: str) -> str:
    """Isolate the bench (bench/env.py: database ``cc_bench_<name>`` made afresh, broker key prefix of
    its own, also for the processes it starts), set Django up on it and migrate; returns its URL."""
    bench = isolate(name)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return bench.database_url


def statistics_refresh() -> None:
    """Have MariaDB count the bench's tables again (ANALYZE TABLE), as a DBA does after a bulk load.

    A bench grows its tables by tens of thousands of rows in a minute; InnoDB recounts a table in the
    background once a tenth of it changed, so a page measured right after may be planned on the counts of
    the empty table (a page's rows read by walking an endpoint's 10,000 desktops, not by the 50 keys:
    1.6 against 1.1 ms). A campus's tables grow over months, their counts keeping up."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"ANALYZE TABLE {connection.ops.quote_name(table)}")
            cursor.fetchall()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def uvicorn(port: int, *, env: dict, workers: int = 2) -> subprocess.Popen:
    """The portal under uvicorn on 127.0.0.1:``port``, once it accepts connections (or after 60 s: a busy machine)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off", "--log-level", "warning", "--workers", str(workers)],
        cwd=ROOT, env=env,
    )  # fmt: skip
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


def print_load() -> None:
    """Other work on the machine skews every number: say how busy it was."""
    print("load average (1/5/15 min): " + " ".join(f"{n:.1f}" for n in os.getloadavg()))


def celery_worker(
    threads: int,
    *,
    pool: str = "threads",
    env: dict | None = None,
    timeout: float = 90,
    queues: str = "default,hypervisor",
) -> subprocess.Popen:
    """A Celery worker on the bench's broker (the environment django_on set up), ``threads`` threads (or, with
    ``pool="prefork"``, as many processes), consuming ``queues`` (the default and hypervisor queues); returned
    once its heartbeat is in the bench's database."""
    from portal.models import WorkerHeartbeat

    name = f"bench-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queues, "--pool", pool,
         "-c", str(threads), "--loglevel", "WARNING", "-n", f"{name}@%h", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=dict(os.environ) if env is None else env,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not WorkerHeartbeat.objects.filter(hostname__startswith=name).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the Celery worker did not start")
        time.sleep(0.2)
    return process


def desktops_wait(ids: list[int], states: tuple[str, ...], *, timeout: float = 300, poll: float = 0.02) -> None:
    """Until every desktop of ``ids`` is in one of ``states``; any in error (or the timeout) ends the bench."""
    from compute.models import Desktop

    deadline = time.monotonic() + timeout
    while Desktop.objects.filter(pk__in=ids).exclude(state__in=(*states, "error")).exists():
        if time.monotonic() > deadline:
            left = list(Desktop.objects.filter(pk__in=ids).exclude(state__in=states).values_list("state", "last_error"))
            raise SystemExit(f"timed out; not done: {left[:3]}")
        time.sleep(poll)
    failed = list(Desktop.objects.filter(pk__in=ids, state="error").values_list("error_reason", flat=True))
    if failed:
        raise SystemExit(f"{len(failed)} desktops failed: {failed[:3]}")


def domain_of(conn, vm_name: str) -> str:
    """The inactive domain XML of ``vm_name`` on ``conn``: a portal-made VM, as the template of a raw one."""
    import libvirt

    return conn.lookupByName(vm_name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def raw_domain(template: str, *, name: str, volume: str) -> str:
    """``template`` (a portal VM's domain) as another VM: its name, system volume and serial log; no UUID or MAC
    (libvirt makes new ones), nothing else changed. The raw side of a provisioning bench starts the very VMs the
    portal starts, so a ratio measures the portal, not QEMU starting more devices."""
    from xml.etree import ElementTree as ET

    root = ET.fromstring(template)
    old = root.findtext("name")
    root.find("name").text = name
    for el in root.findall("uuid"):
        root.remove(el)
    for iface in root.findall("devices/interface"):
        for mac in iface.findall("mac"):
            iface.remove(mac)
    for disk in root.findall("devices/disk"):
        if disk.find("target").get("dev") == "vda":
            disk.find("source").set("volume", volume)
    for source in root.findall("devices/serial/source"):
        source.set("path", source.get("path").replace(old, name))
    return ET.tostring(root, encoding="unicode")

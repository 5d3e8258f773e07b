"""Live and cold migration between the testbed's hosts, with the portal's own services and tasks.

Cluster east (h1, h2) gets shared storage through ``shared_storage`` (the testbed's shared directory,
which libvirt cannot recognise as shared: ``--unsafe-migration``); a second, local pool on each host
serves the copied-storage case. Desktops are made by the portal (placement, provisioning) and moved by
``migrate --desktop``, ``desktop_migrate`` and maintenance; each test checks on the hosts' own libvirtd
where the VM runs, and on the database where the portal thinks it runs.
"""

import asyncio
import contextlib
import io
import json
import subprocess
import threading
import time
import uuid

import libvirt
import pytest
from django.core.management import call_command
from django.db import connection

from compute import services
from compute.classroom.models import ConsoleTicket
from compute.classroom.services.console import console_ticket_issue
from compute.console_rfb import server_authenticate
from compute.hypervisor import drivers_close_all
from compute.models import Desktop, DesktopMigration, Endpoint, Host, StoragePool, secret_decrypt
from tests.testbed.hosts import add_host

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed]


def _network_xml(name: str, bridge: str) -> str:
    return (
        f"<network><name>{name}</name><bridge name='{bridge}'/>"
        "<ip address='192.168.215.1' netmask='255.255.255.0'/></network>"
    )


def _local_pool_xml(name: str) -> str:
    return f"<pool type='dir'><name>{name}</name><target><path>/var/lib/libvirt/images/{name}</path></target></pool>"


GOLDEN_XML = "<volume><name>{}</name><capacity unit='M'>64</capacity><target><format type='qcow2'/></target></volume>"


class Bed:
    """The east cluster with shared storage and a local pool per host, a golden image on each, a flavor."""

    def __init__(self, testbed, scenario, uid):
        self.testbed, self.scenario, self.uid = testbed, scenario, uid
        self.shared, self.local, self.network = f"tbsh-{uid}", f"tbloc-{uid}", f"tbmig-{uid}"
        self.golden = f"golden-{uid}.qcow2"
        self.conns = {h.name: h.connect() for h in (testbed["h1"], testbed["h2"])}

    def host(self, name: str) -> Host:
        return Host.objects.select_related("endpoint").get(name=name)

    def domain_active(self, host: str, vm_name: str) -> bool | None:
        """True running, False defined and shut off, None: not on that host."""
        try:
            return bool(self.conns[host].lookupByName(vm_name).isActive())
        except libvirt.libvirtError:
            return None

    def desktop(self, version, name: str) -> Desktop:
        desktop = services.desktop_create(
            actor=self.scenario.sysadmin,
            tenant=self.scenario.tenant_a,
            image_version=version,
            flavor=self.flavor,
            owner=self.scenario.student,
            name=name,
        )
        desktop.refresh_from_db()
        assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
        return desktop


@pytest.fixture
def bed(testbed, scenario):
    uid = uuid.uuid4().hex[:6]
    b = Bed(testbed, scenario, uid)
    b.area = testbed.shared_area(b.shared)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(b.area.dir / b.golden), "64M"], check=True)
    try:
        for conn in b.conns.values():
            conn.networkCreateXML(_network_xml(b.network, f"tm{uid}"))
            pool = conn.storagePoolDefineXML(_local_pool_xml(b.local), 0)
            pool.build(0)
            pool.create(0)
            pool.createXML(GOLDEN_XML.format(b.golden), 0)
        for name in ("h1", "h2"):
            add_host(testbed[name])
        out = io.StringIO()
        call_command(
            "shared_storage",
            *("--site", "east", "--cluster", "east-general", "--pool", b.shared, "--kind", "dir"),
            *("--path", b.area.path, "--unsafe-migration", "--json"),
            stdout=out,
        )
        assert json.loads(out.getvalue())["hosts"] == ["h1", "h2"]
        for name in ("h1", "h2"):
            StoragePool.objects.create(endpoint=b.host(name).endpoint, name=b.local)
        Endpoint.objects.update(options={"network": b.network})
        image = services.image_create(actor=scenario.sysadmin, name="Debian", os_type="linux")
        b.shared_version, b.local_version = (
            services.image_version_register(
                actor=scenario.sysadmin,
                image=image,
                endpoint=b.host("h1").endpoint,
                pool=pool,
                volume=b.golden,
                size_bytes=64 * 1024**2,
            )
            for pool in (b.shared, b.local)
        )
        b.flavor = services.flavor_create(actor=scenario.sysadmin, name="tb", vcpus=1, memory_mib=64, disk_gib=1)
        yield b
    finally:
        _clean(b)


def _clean(b: Bed) -> None:
    drivers_close_all()
    ours = set(Desktop.objects.values_list("vm_name", flat=True))
    for conn in b.conns.values():
        for dom in conn.listAllDomains(0):
            if dom.name() in ours:
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefine()
        _drop_pool(conn, b.local, volumes=True)
        _drop_pool(conn, b.shared, volumes=False)
        with contextlib.suppress(libvirt.libvirtError):
            conn.networkLookupByName(b.network).destroy()
        conn.close()
    b.area.remove()


def _drop_pool(conn, name: str, *, volumes: bool) -> None:
    """A pool of the test's: its volumes too when it is a host's own (the shared directory stays)."""
    with contextlib.suppress(libvirt.libvirtError):
        pool = conn.storagePoolLookupByName(name)
        if volumes:
            for vol in pool.listAllVolumes(0):
                vol.delete(0)
        pool.destroy()
        if volumes:
            pool.delete(0)
        pool.undefine()


def _other(desktop: Desktop) -> str:
    return "h2" if desktop.host.name == "h1" else "h1"


def _vnc_authenticates(host: str, port: int, password: str) -> bool:
    async def handshake():
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        try:
            await asyncio.wait_for(server_authenticate(reader, writer, password), 5)
        finally:
            writer.close()
        return True

    return asyncio.run(handshake())


@pytest.mark.django_db(transaction=True)  # the tasks start on commit
def test_a_running_desktop_on_shared_storage_migrates_live_and_its_console_follows(bed, scenario, eager):
    desktop = bed.desktop(bed.shared_version, "live-1")
    source, target = desktop.host.name, _other(desktop)
    out = io.StringIO()
    call_command("migrate", "--desktop", str(desktop.pk), "--host", target, "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert (result["desktop"], result["from"], result["to"]) == (desktop.pk, source, target)
    assert result["downtime_ms"] is not None and 0 < result["downtime_ms"] < 5000
    print(f"live migration {source} → {target}: downtime {result['downtime_ms']} ms")
    assert bed.domain_active(target, desktop.vm_name) is True
    assert bed.domain_active(source, desktop.vm_name) is None  # undefined on the source
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING and desktop.host.name == target
    assert desktop.endpoint.name == target and desktop.vnc_host == bed.testbed[target].address
    migration = DesktopMigration.objects.get(desktop=desktop)
    assert migration.state == "done" and not migration.copy_storage and migration.percent == 100
    # The console: a fresh ticket sets the one-time password on the new host's QEMU, which takes it.
    console_ticket_issue(actor=scenario.student, desktop=desktop)
    ticket = ConsoleTicket.objects.get(desktop=desktop)
    assert ticket.host == bed.testbed[target].address
    assert _vnc_authenticates(ticket.host, ticket.port, secret_decrypt(ticket.vnc_password_encrypted))


@pytest.mark.django_db(transaction=True)
def test_a_desktop_on_a_local_pool_migrates_live_with_its_disk_copied(bed, eager):
    desktop = bed.desktop(bed.local_version, "copy-1")
    assert desktop.host.name == "h1"  # a local golden image serves its own host only
    disk = f"{desktop.vm_name}-system.qcow2"
    migration = services.desktop_migrate(actor=bed.scenario.sysadmin, desktop=desktop, host=bed.host("h2"))
    assert migration.copy_storage
    migration.refresh_from_db()
    assert migration.state == "done", migration.error
    assert migration.downtime_ms is not None and migration.percent == 100
    assert bed.domain_active("h2", desktop.vm_name) is True and bed.domain_active("h1", desktop.vm_name) is None
    h1_volumes = bed.conns["h1"].storagePoolLookupByName(bed.local).listVolumes()
    h2_volumes = bed.conns["h2"].storagePoolLookupByName(bed.local).listVolumes()
    assert disk not in h1_volumes and disk in h2_volumes  # copied, and gone from the source
    # The persistent definition on h2 keeps the disk as a volume of the pool (the portal's own form).
    inactive = bed.conns["h2"].lookupByName(desktop.vm_name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert f"pool='{bed.local}'" in inactive.replace('"', "'")


@pytest.mark.django_db(transaction=True)
def test_a_migration_that_fails_midway_leaves_the_desktop_running_on_its_source(bed, eager):
    desktop = bed.desktop(bed.shared_version, "fail-1")
    source, target = desktop.host.name, _other(desktop)
    bed.conns[target].networkLookupByName(bed.network).destroy()  # the target cannot start its NIC
    migration = services.desktop_migrate(actor=bed.scenario.sysadmin, desktop=desktop, host=bed.host(target))
    migration.refresh_from_db()
    assert migration.state == "failed" and bed.network in migration.error
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING and desktop.host.name == source
    assert bed.network in desktop.last_error  # shown on the desktop's page
    assert bed.domain_active(source, desktop.vm_name) is True
    assert bed.domain_active(target, desktop.vm_name) is None


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_migration_stops_and_the_desktop_stays(bed, eager):
    desktop = bed.desktop(bed.shared_version, "cancel-1")
    source, target = desktop.host.name, _other(desktop)
    Host.objects.filter(name=source).update(migration_bandwidth_mib=1)  # slow enough to cancel
    errors = []

    def migrate():
        try:
            services.desktop_migrate(actor=bed.scenario.sysadmin, desktop=desktop, host=bed.host(target))
        except Exception as exc:  # noqa: BLE001 - reported to the test's thread
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=migrate)
    worker.start()
    deadline = time.monotonic() + 30
    while not DesktopMigration.objects.filter(desktop=desktop, state="running").exists():
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.05)
    services.migration_cancel(actor=bed.scenario.sysadmin, migration=DesktopMigration.objects.get(desktop=desktop))
    worker.join(60)
    assert not errors
    migration = DesktopMigration.objects.get(desktop=desktop)
    assert migration.state == "cancelled"
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING and desktop.host.name == source
    assert bed.domain_active(source, desktop.vm_name) is True


@pytest.mark.django_db(transaction=True)
def test_maintenance_evacuates_every_desktop_of_a_host_live_or_cold(bed, eager):
    Host.objects.filter(name="h2").update(state=Host.State.MAINTENANCE)  # all three land on h1
    desktops = [bed.desktop(bed.shared_version, f"evac-{i}") for i in range(3)]
    Host.objects.filter(name="h2").update(state=Host.State.ENABLED)
    services.desktop_stop(actor=bed.scenario.sysadmin, desktop=desktops[2])
    started = time.monotonic()
    out = io.StringIO()
    call_command("host_maintenance", "--name", "h1", "on", "--json", stdout=out)
    result = json.loads(out.getvalue())
    print(f"evacuation of 3 desktops: {time.monotonic() - started:.1f} s")
    assert result["state"] == "maintenance" and result["moving"] == 3 and result["not_moved"] == []
    status = services.evacuation_status(bed.host("h1"))
    assert status["done"] and status["left"] == 0 and status["counts"]["done"] == 3
    for desktop in desktops:
        desktop.refresh_from_db()
        assert desktop.host.name == "h2"
        assert bed.domain_active("h1", desktop.vm_name) is None
    assert [d.state for d in desktops] == ["running", "running", "stopped"]
    assert [bed.domain_active("h2", d.vm_name) for d in desktops] == [True, True, False]
    kinds = sorted(DesktopMigration.objects.values_list("kind", flat=True))
    assert kinds == ["cold", "live", "live"]
    # No new desktop goes to the host in maintenance; off makes it placeable again.
    assert bed.desktop(bed.shared_version, "after").host.name == "h2"
    services.host_maintenance(actor=bed.scenario.sysadmin, name="h1", on=False)
    assert bed.host("h1").state == Host.State.ENABLED


@pytest.mark.django_db(transaction=True)
def test_drs_moves_load_off_a_hot_host(bed, eager):
    from compute import drs
    from compute.tasks.migration import drs_tick

    Host.objects.filter(name="h2").update(state=Host.State.MAINTENANCE)  # all three land on h1
    desktops = [bed.desktop(bed.shared_version, f"drs-{i}") for i in range(3)]
    Host.objects.filter(name="h2").update(state=Host.State.ENABLED)
    # Capacity as the portal counts it: 1000 MiB each, so three 64 MiB desktops make h1 19 % loaded.
    Host.objects.filter(name__in=("h1", "h2")).update(memory_mib=1000)
    cluster = bed.host("h1").endpoint.cluster
    drs.drs_policy_set(
        actor=bed.scenario.sysadmin,
        cluster=cluster,
        mode="recommend",
        threshold_percent=15,
        max_moves=2,
        class_grace_minutes=10,
    )
    assert drs_tick() == 0  # recommend: shown, not done
    (rec,) = drs.drs_recommendations(cluster)
    assert (rec.source.name, rec.target.name, rec.source_percent) == ("h1", "h2", 19)
    drs.drs_policy_set(
        actor=bed.scenario.sysadmin,
        cluster=cluster,
        mode="automatic",
        threshold_percent=15,
        max_moves=2,
        class_grace_minutes=10,
    )
    assert drs_tick() == 1
    migration = DesktopMigration.objects.get(reason="drs")
    assert migration.state == "done", migration.error
    moved = Desktop.objects.get(pk=migration.desktop_id)
    assert moved.host.name == "h2" and bed.domain_active("h2", moved.vm_name) is True
    assert bed.domain_active("h1", moved.vm_name) is None
    assert sorted(d.host.name for d in Desktop.objects.filter(pk__in=[d.pk for d in desktops])) == ["h1", "h1", "h2"]
    assert drs.drs_recommendations(cluster) == []  # h1 at 13 %: balanced

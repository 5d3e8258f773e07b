"""Desktops placed among the testbed's hosts and provisioned on each one's own libvirtd: golden images on
storage every host mounts (the testbed's shared directory), one version per cluster (east: h1 and h2,
west: h3); the spread policy puts the desktops on all three hosts, and each runs there."""

import contextlib
import subprocess
import uuid

import libvirt
import pytest

from compute import services
from compute.hypervisor import drivers_close_all
from compute.models import Desktop, Endpoint, Host
from tests.testbed.hosts import add_host

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed]


def _network_xml(name: str, bridge: str) -> str:
    return f"""<network><name>{name}</name><bridge name='{bridge}'/>
  <ip address='192.168.214.1' netmask='255.255.255.0'/></network>"""


@pytest.fixture
def shared_pool(testbed):
    """A golden qcow2 in the shared directory, a dir pool of it and an isolated network on every host."""
    uid = uuid.uuid4().hex[:6]
    pool, network, golden = f"tbshared-{uid}", f"tbnet-{uid}", f"golden-{uid}.qcow2"
    area = testbed.shared_area(pool)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(area.dir / golden), "64M"], check=True)
    conns = {host.name: host.connect() for host in testbed}
    try:
        for conn in conns.values():
            conn.storagePoolCreateXML(area.pool_xml(pool), 0)
            conn.networkCreateXML(_network_xml(network, f"tb{uid}"))
        yield pool, network, golden
    finally:
        drivers_close_all()
        ours = set(Desktop.objects.values_list("vm_name", flat=True))  # only this test's domains
        for conn in conns.values():
            for dom in conn.listAllDomains(0):
                if dom.name() in ours:
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefine()
            with contextlib.suppress(libvirt.libvirtError):
                conn.networkLookupByName(network).destroy()
            with contextlib.suppress(libvirt.libvirtError):
                conn.storagePoolLookupByName(pool).destroy()
            conn.close()
        area.remove()


@pytest.mark.django_db(transaction=True)  # the tasks start on commit
def test_desktops_are_placed_on_all_three_hosts_and_run_on_each(testbed, scenario, shared_pool, eager):
    pool, network, golden = shared_pool
    for host in testbed:
        add_host(host, shared_storage_pool=pool)
    Endpoint.objects.update(options={"network": network})
    image = services.image_create(actor=scenario.sysadmin, name="Debian", os_type="linux")
    versions = {
        site: services.image_version_register(
            actor=scenario.sysadmin,
            image=image,
            endpoint=Host.objects.get(name=first).endpoint,
            pool=pool,
            volume=golden,
            size_bytes=64 * 1024**2,
        )
        for site, first in (("east", "h1"), ("west", "h3"))
    }
    flavor = services.flavor_create(actor=scenario.sysadmin, name="tb", vcpus=1, memory_mib=64, disk_gib=1)
    desktops = [
        services.desktop_create(
            actor=scenario.sysadmin,
            tenant=scenario.tenant_a,
            image_version=versions[site],
            flavor=flavor,
            owner=scenario.student,
            name=f"tb-{i}",
        )
        for i, site in enumerate(("east", "east", "west"))
    ]
    placed = {}
    for desktop in desktops:
        desktop.refresh_from_db()
        assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
        placed[desktop.host.name] = desktop.vm_name
    assert sorted(placed) == ["h1", "h2", "h3"]
    for host in testbed:
        conn = host.connect()
        try:
            assert conn.lookupByName(placed[host.name]).isActive()  # on that host's own libvirtd
        finally:
            conn.close()

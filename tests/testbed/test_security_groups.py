"""Security groups on a remote compute node (#16.6): a desktop the portal provisions on testbed host h3 has its
NIC's nwfilter defined on h3's own libvirtd (over qemu+tcp) and bound to its NIC, with libvirt's clean-traffic
(anti-spoofing) in it; the rules are in h3's firewall (iptables and ebtables listed inside h3); a rule change
and a change of group reach the running VM there, live; and none of it is on this machine."""

import contextlib
import subprocess
import time
import uuid
from xml.etree import ElementTree as ET

import libvirt
import pytest

from compute import networking
from compute import services as compute_services
from compute.hypervisor import drivers_close_all
from compute.models import Desktop, Endpoint, Host
from network import services
from network.models import Address
from tests.harness.hostnet import free_cidr, libvirt_sweep
from tests.network.conftest import prefixed, tenant_network
from tests.testbed.hosts import add_host

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed]


@pytest.fixture
def h3_env(testbed, scenario):
    """h3 added as a compute node, its libvirt objects under a prefix of this test's, a golden image on the
    testbed's shared storage and a flavor; everything made on h3 is removed afterwards."""
    host = testbed["h3"]
    uid = uuid.uuid4().hex[:6]
    prefix, pool, golden = f"sg{uid}", f"sgpool-{uid}", f"sg-golden-{uid}.qcow2"
    area = testbed.shared_area(pool)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(area.dir / golden), "64M"], check=True)
    conn = host.connect()
    conn.storagePoolCreateXML(area.pool_xml(pool), 0)
    add_host(host, shared_storage_pool=pool)
    endpoint = Endpoint.objects.get(name=host.name)
    endpoint.options = {**endpoint.options, **prefixed(prefix)}
    endpoint.save(update_fields=["options"])
    image = compute_services.image_create(actor=scenario.sysadmin, name="Debian", os_type="linux")
    version = compute_services.image_version_register(
        actor=scenario.sysadmin, image=image, endpoint=endpoint, pool=pool, volume=golden, size_bytes=64 * 1024**2
    )
    flavor = compute_services.flavor_create(actor=scenario.sysadmin, name="sg", vcpus=1, memory_mib=64, disk_gib=1)
    try:
        yield host, endpoint, version, flavor, prefix
    finally:
        drivers_close_all()
        for vm_name in Desktop.objects.values_list("vm_name", flat=True):
            libvirt_sweep(host.uri, vm_name)
        libvirt_sweep(host.uri, prefix)
        with contextlib.suppress(libvirt.libvirtError):
            conn.storagePoolLookupByName(pool).destroy()
        conn.close()
        area.remove()


def _live_interface(host, vm_name: str) -> ET.Element:
    conn = host.connect()
    try:
        xml = conn.lookupByName(vm_name).XMLDesc(0)
    finally:
        conn.close()
    interface = ET.fromstring(xml).find("devices/interface")
    assert interface is not None, xml
    return interface


def _firewall_in(host, vnet: str) -> str:
    """The iptables rules of one tap device, listed inside the host (libvirt names its chains after it)."""
    out = host.run("iptables-save").stdout
    return "\n".join(line for line in out.splitlines() if vnet in line)


def _ebtables_in(host, vnet: str) -> str:
    """The bridge-firewall chains libvirt made for one tap device inside the host."""
    out = host.run("ebtables", "-t", "nat", "-L", "--Lmac2").stdout
    chains, current = [], False
    for line in out.splitlines():
        if line.startswith("Bridge chain:"):
            current = vnet in line
        if current:
            chains.append(line)
    return "\n".join(chains)


def _wait(read, ready, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    value = read()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(0.25)
        value = read()
    assert ready(value), value
    return value


def _this_machines_filters() -> str:
    return subprocess.run(
        ["virsh", "-c", "qemu:///system", "nwfilter-list"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.django_db(transaction=True)  # tasks start on commit; they run in-process (eager)
def test_a_desktop_on_a_remote_host_gets_its_groups_nwfilter_there_and_rule_changes_apply_live_there(
    scenario, h3_env, eager
):
    host, endpoint, version, flavor, prefix = h3_env
    tenant_network(scenario, cidr=free_cidr())
    web = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="web")
    services.rule_add(actor=scenario.tenant_admin, group=web, direction="in", protocol="tcp", port_min=443)

    desktop = compute_services.desktop_create(
        actor=scenario.sysadmin,
        tenant=scenario.tenant_a,
        image_version=version,
        flavor=flavor,
        owner=scenario.student,
        name="sg-remote",
        endpoint=endpoint,
    )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
    assert desktop.host == Host.objects.get(name="h3")
    address = Address.objects.get(desktop_id=desktop.pk)
    name = networking.filter_name(address, endpoint)
    assert name.startswith(prefix)

    # The NIC's filter is on h3's libvirtd, with the anti-spoofing reference, and bound to the NIC.
    conn = host.connect()
    try:
        dumped = conn.nwfilterLookupByName(name).XMLDesc(0)
    finally:
        conn.close()
    assert "filter='clean-traffic'" in dumped or 'filter="clean-traffic"' in dumped
    interface = _live_interface(host, desktop.vm_name)
    filterref = interface.find("filterref")
    assert filterref is not None and filterref.get("filter") == name
    assert {p.get("name"): p.get("value") for p in filterref.findall("parameter")}.get("IP") == address.ip
    vnet = interface.find("target").get("dev")

    # Anti-spoofing in h3's bridge firewall: only the NIC's own MAC and IP leave the VM.
    chains = _wait(lambda: _ebtables_in(host, vnet), lambda c: address.ip in c)
    assert f"-s {address.mac.lower()} -j RETURN" in chains, chains
    assert f"--ip-src {address.ip} -j RETURN" in chains, chains

    # The NIC moves to the "web" group: its filter is redefined on h3 and the VM's rules there follow.
    services.nic_security_group_set(actor=scenario.tenant_admin, address=address, group=web)
    _wait(lambda: _firewall_in(host, vnet), lambda r: "--dport 443" in r)

    # A rule added to the group reaches the running VM on h3, live.
    port = 8000 + uuid.uuid4().int % 999
    services.rule_add(
        actor=scenario.tenant_admin,
        group=web,
        direction="in",
        protocol="tcp",
        port_min=port,
        port_max=port + 1,
        remote_cidr="10.99.0.0/16",
    )
    rules = _wait(lambda: _firewall_in(host, vnet), lambda r: f"--dport {port}:{port + 1}" in r)
    assert "10.99.0.0/16" in rules and "--dport 443" in rules

    # None of it is on this machine: neither the filter in its libvirtd nor the rules in its firewall.
    assert name not in _this_machines_filters()
    local = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert f"--dport {port}:{port + 1}" not in local

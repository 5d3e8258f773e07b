"""Bindings and security groups on the real libvirtd (qemu:///system): networks with dnsmasq,
20 concurrent allocations, a failover drill between two "hosts", nwfilters in iptables.

Every libvirt object carries a prefix unique to the test and is removed afterwards, even
on failure (``qemu_prefix``); subnets are 10.231.N.0/24 ranges no route uses yet.
"""

import os
import subprocess
import time
import uuid

import pytest

from compute import networking
from compute import services as compute_services
from compute.drivers.base import VMSpec
from compute.hypervisor import driver_for
from compute.models import Desktop, Endpoint
from network import services
from network.models import Address
from tests.compute.conftest import make_env
from tests.harness.hostnet import dnsmasq_hosts, free_cidr, libvirt_sweep, network_xml
from tests.harness.qemu import LibvirtPath
from tests.network.conftest import desktop_row, endpoint_make, in_threads, prefixed, tenant_network

pytestmark = pytest.mark.libvirt

URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")


def _vm(driver, desktop, nics, pool):
    spec = VMSpec(
        name=desktop.vm_name,
        vcpus=1,
        memory_mib=128,
        image_pool=pool["pool"],
        image_volume=pool["volume"],
        domain_type="qemu",
        nics=nics,
        vnc=False,
    )
    return driver.create_vm(spec, start=True)


def _live_xml(name: str) -> str:
    return subprocess.run(["virsh", "-c", URI, "dumpxml", name], capture_output=True, text=True, check=True).stdout


def _vnet(vm_name: str) -> str:
    import xml.etree.ElementTree as ET

    target = ET.fromstring(_live_xml(vm_name)).find("devices/interface/target")
    assert target is not None, "the running VM has no tap interface"
    return target.get("dev")


def _vm_rules(vnet: str) -> str:
    """The firewall rules of one VM's interface (libvirt names its chains after the tap device)."""
    return "\n".join(line for line in _firewall().splitlines() if vnet in line)


def _wait_rules(vnet: str, ready, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    rules = _vm_rules(vnet)
    while not ready(rules) and time.monotonic() < deadline:
        time.sleep(0.25)
        rules = _vm_rules(vnet)
    assert ready(rules), rules
    return rules


def _firewall() -> str:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    out += subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout
    return out


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_allocations_land_in_a_real_networks_dhcp(scenario, qemu_prefix):
    cidr = free_cidr()
    network = tenant_network(scenario, cidr=cidr)
    endpoint = endpoint_make(scenario, name=f"{qemu_prefix}-a", url=URI, prefix=qemu_prefix)
    desktops = [desktop_row(scenario.tenant_a, endpoint, vm_name=f"{qemu_prefix}-d{i}") for i in range(20)]

    def allocate_and_push(i):
        desktop = Desktop.objects.select_related("endpoint", "tenant").get(pk=desktops[i].pk)
        networking.desktop_nics_allocate(desktop=desktop)
        return networking.desktop_bindings_push(desktop=desktop)

    results = in_threads(allocate_and_push, 20)
    assert not [r for r in results if isinstance(r, Exception)], results

    addresses = list(Address.objects.filter(subnet__network=network))
    assert len({a.ip for a in addresses}) == 20 and len({a.mac for a in addresses}) == 20
    name = networking.libvirt_network_name(network, endpoint)
    xml = network_xml(URI, name)
    assert "<forward mode='nat'" in xml or '<forward mode="nat"' in xml
    hostsfile = dnsmasq_hosts(name)
    for address in addresses:
        assert f"mac='{address.mac}'" in xml and f"ip='{address.ip}'" in xml
        assert f"{address.mac},{address.ip}" in hostsfile
        assert address.pushed_to == endpoint.name


@pytest.mark.django_db(transaction=True)
def test_failover_drill_the_desktop_keeps_its_mac_and_ip_on_host_b(
    scenario,
    qemu_prefix,
    qemu_pool,
    eager,  # noqa: F811
    request,
):
    """Desktop on host A; A fails; the portal restarts it on B; A comes back and the sync cleans it.

    Both "hosts" are the one libvirtd here, so host A's failure is played out in full: the
    path to A is cut (the portal cannot reach it) and A's VM and network stop, as they do
    when a machine dies (two live bridges for one subnet cannot coexist on one machine).
    """
    path_a = LibvirtPath()
    try:
        network = tenant_network(scenario, cidr=free_cidr())
        env = make_env(
            scenario,
            url=path_a.uri,
            pool=qemu_pool["pool"],
            volume=qemu_pool["volume"],
            size_bytes=qemu_pool["size"],
            name=f"{qemu_prefix}-a",
        )
        a = env.endpoint
        a.options = {**a.options, **prefixed(f"{qemu_prefix}a")}
        a.save(update_fields=["options"])
        b = endpoint_make(scenario, name=f"{qemu_prefix}-b", url=URI, prefix=f"{qemu_prefix}b")
        # The student's desktop, created and provisioned on A by the portal (tasks run in-process).
        desktop = compute_services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=env.version, flavor=env.flavor, endpoint=a
        )
        request.addfinalizer(lambda: libvirt_sweep(URI, desktop.vm_name))
        desktop = Desktop.objects.select_related("endpoint", "image_version", "flavor", "tenant").get(pk=desktop.pk)
        assert desktop.state == Desktop.State.RUNNING, desktop.last_error
        address = Address.objects.get(desktop_id=desktop.pk)
        assert (desktop.mac, desktop.guest_ip) == (address.mac, address.ip)
        name_a = networking.libvirt_network_name(network, a)
        name_b = networking.libvirt_network_name(network, b)
        assert f"{address.mac},{address.ip}" in dnsmasq_hosts(name_a)

        # Host A dies: unreachable for the portal; its VM and bridge are gone with it.
        path_a.cut()
        Endpoint.objects.filter(pk=a.pk).update(status=Endpoint.Status.UNREACHABLE)
        for command in (["destroy", desktop.vm_name], ["undefine", desktop.vm_name], ["net-destroy", name_a]):
            subprocess.run(["virsh", "-c", URI, *command], capture_output=True, check=True)

        # The portal restarts the desktop on B, with the same NIC from the database.
        report = networking.desktop_failover(desktop=desktop, target=b)
        assert report["mac"] == address.mac
        assert report["bindings"]["pushed"] == [address.mac] and a.name in report["bindings"]["pending"]
        desktop.refresh_from_db()
        assert desktop.endpoint_id == b.pk
        assert f"<mac address='{address.mac}'/>" in _live_xml(desktop.vm_name)
        xml_b = network_xml(URI, name_b)
        assert f"mac='{address.mac}'" in xml_b and f"ip='{address.ip}'" in xml_b
        assert f"{address.mac},{address.ip}" in dnsmasq_hosts(name_b)
        assert address.mac in network_xml(URI, name_a)  # A kept its stale entry while down

        # A comes back; the sync removes the stale entry from A and leaves B alone.
        path_a.restore()
        report = networking.dhcp_sync()
        assert report["endpoints"][a.name]["removed"] == [{"network": name_a, "mac": address.mac, "ip": address.ip}]
        assert report["endpoints"][b.name] == {"added": [], "changed": [], "removed": [], "errors": []}
        assert address.mac not in network_xml(URI, name_a)
        assert f"{address.mac},{address.ip}" in dnsmasq_hosts(name_b)
        address.refresh_from_db()
        assert address.pushed_to == b.name
        driver_for(b).delete_vm(desktop.vm_name)
    finally:
        path_a.close()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_security_group_is_an_nwfilter_in_iptables_and_rule_changes_apply_live(
    scenario,
    qemu_prefix,
    qemu_pool,
    celery_worker,
):
    """The rule change goes the production way: service → hook → task on a real worker → nwfilter."""
    tenant_network(scenario, cidr=free_cidr())
    endpoint = endpoint_make(scenario, name=f"{qemu_prefix}-a", url=URI, prefix=qemu_prefix)
    group = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="web")
    services.rule_add(actor=scenario.tenant_admin, group=group, direction="in", protocol="tcp", port_min=443)
    desktop = desktop_row(scenario.tenant_a, endpoint, vm_name=f"{qemu_prefix}-vm")
    (address,) = networking.desktop_nics_allocate(desktop=desktop, security_group=group)
    nics = networking.desktop_network_prepare(desktop=desktop, driver=driver_for(endpoint))
    assert nics[0].nwfilter == networking.filter_name(address, endpoint)
    _vm(driver_for(endpoint), desktop, nics, qemu_pool)
    assert f"filter='{nics[0].nwfilter}'" in _live_xml(desktop.vm_name)
    vnet = _vnet(desktop.vm_name)

    assert "--dport 443" in _vm_rules(vnet)

    # A rule added to the group reaches the running VM (through the hook and the worker).
    port = 8000 + uuid.uuid4().int % 999
    services.rule_add(
        actor=scenario.tenant_admin,
        group=group,
        direction="in",
        protocol="tcp",
        port_min=port,
        port_max=port + 1,
        remote_cidr="10.99.0.0/16",
    )
    rules = _wait_rules(vnet, lambda r: f"--dport {port}:{port + 1}" in r)
    assert "10.99.0.0/16" in rules and "--dport 443" in rules

    # The NIC moves to another group: its own filter is redefined, live.
    ssh = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="ssh")
    services.rule_add(actor=scenario.tenant_admin, group=ssh, direction="in", protocol="tcp", port_min=port + 7)
    services.nic_security_group_set(actor=scenario.tenant_admin, address=address, group=ssh)
    rules = _wait_rules(vnet, lambda r: f"--dport {port + 7}" in r and "--dport 443" not in r)
    assert f"--dport {port}:{port + 1}" not in rules
    driver_for(endpoint).delete_vm(desktop.vm_name)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_periodic_dhcp_sync_runs_on_a_real_worker_and_repairs_drift(scenario, qemu_prefix, celery_worker):
    from compute.drivers.base import DhcpHost
    from compute.tasks.network import dhcp_sync as dhcp_sync_task

    network = tenant_network(scenario, cidr=free_cidr())
    endpoint = endpoint_make(scenario, name=f"{qemu_prefix}-a", url=URI, prefix=qemu_prefix)
    desktop = desktop_row(scenario.tenant_a, endpoint, vm_name=f"{qemu_prefix}-d")
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    networking.desktop_bindings_push(desktop=desktop)
    name = networking.libvirt_network_name(network, endpoint)
    stranger = DhcpHost(mac="52:54:00:ab:cd:ef", ip=str(address.ip).rsplit(".", 1)[0] + ".250")
    driver_for(endpoint).dhcp_host_set(name, stranger)
    driver_for(endpoint).dhcp_host_remove(name, address.mac)

    dhcp_sync_task.delay()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hosts = dnsmasq_hosts(name)
        if f"{address.mac},{address.ip}" in hosts and stranger.mac not in hosts:
            break
        time.sleep(0.25)
    hosts = dnsmasq_hosts(name)
    assert f"{address.mac},{address.ip}" in hosts and stranger.mac not in hosts, hosts


@pytest.mark.django_db(transaction=True)
def test_concurrent_ensures_of_one_network_from_separate_connections_all_succeed(scenario, qemu_prefix):
    """Eight callers, each on its own libvirt connection (as separate worker processes are), ensure
    the same network at the same moment: every one succeeds and one network results, running."""
    import libvirt

    from compute.hypervisor import driver_open
    from network.models import NetworkDeployment

    network = tenant_network(scenario, cidr=free_cidr())
    endpoint = endpoint_make(scenario, name=f"{qemu_prefix}-a", url=URI, prefix=qemu_prefix)
    drivers = [driver_open(endpoint) for _ in range(8)]
    try:
        results = in_threads(
            lambda i: networking.network_ensure_on(network=network, endpoint=endpoint, driver=drivers[i]), 8
        )
    finally:
        for driver in drivers:
            driver.close()
    name = networking.libvirt_network_name(network, endpoint)
    assert results == [name] * 8, results
    conn = libvirt.open(URI)
    try:
        nets = [n for n in conn.listAllNetworks(0) if n.name().startswith(qemu_prefix)]
        assert [n.name() for n in nets] == [name]
        assert nets[0].isActive() and nets[0].autostart()
    finally:
        conn.close()
    assert NetworkDeployment.objects.filter(network=network, endpoint=endpoint.name).count() == 1


def _ebtables_of(vnet: str) -> str:
    """The bridge-firewall chains libvirt made for one tap device (I-vnetN-mac, I-vnetN-ipv4-ip, ...)."""
    out = subprocess.run(["ebtables", "-t", "nat", "-L", "--Lmac2"], capture_output=True, text=True, check=True).stdout
    chains, current = [], False
    for line in out.splitlines():
        if line.startswith("Bridge chain:"):
            current = vnet in line
        if current:
            chains.append(line)
    return "\n".join(chains)


@pytest.mark.django_db(transaction=True)
def test_every_nic_sends_only_from_its_own_mac_and_ip(scenario, qemu_prefix, qemu_pool):
    """#14.1 anti-spoofing: each NIC's filter references libvirt's clean-traffic with the NIC's IP, so the
    bridge firewall drops frames from any other MAC and packets from any other source IP."""
    tenant_network(scenario, cidr=free_cidr())
    endpoint = endpoint_make(scenario, name=f"{qemu_prefix}-a", url=URI, prefix=qemu_prefix)
    desktop = desktop_row(scenario.tenant_a, endpoint, vm_name=f"{qemu_prefix}-vm")
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    nics = networking.desktop_network_prepare(desktop=desktop, driver=driver_for(endpoint))
    assert nics[0].filter_params == {"IP": address.ip}
    dumped = subprocess.run(
        ["virsh", "-c", URI, "nwfilter-dumpxml", nics[0].nwfilter], capture_output=True, text=True, check=True
    ).stdout
    assert "<filterref filter='clean-traffic'/>" in dumped
    _vm(driver_for(endpoint), desktop, nics, qemu_pool)
    vnet = _vnet(desktop.vm_name)

    deadline = time.monotonic() + 30
    chains = _ebtables_of(vnet)
    while address.ip not in chains and time.monotonic() < deadline:
        time.sleep(0.25)
        chains = _ebtables_of(vnet)
    # Frames from the VM: only its own MAC returns to the main chain, anything else is dropped;
    # IPv4 only from its own address; ARP only for its own MAC and IP.
    assert f"-s {address.mac.lower()} -j RETURN" in chains, chains
    assert f"--ip-src {address.ip} -j RETURN" in chains, chains
    for chain in ("mac", "ipv4-ip", "arp-mac", "arp-ip"):
        rules = chains.split(f"I-{vnet}-{chain},", 1)[1].split("Bridge chain:", 1)[0]
        assert rules.rstrip().endswith("-j DROP"), (chain, rules)
    driver_for(endpoint).delete_vm(desktop.vm_name)

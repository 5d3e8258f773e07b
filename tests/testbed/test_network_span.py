"""A tenant network spanning testbed hosts: one L2 segment over VXLAN between the hosts' data addresses, made by
each host's own agent from the database, and a DHCP server per host serving only its own desktops.

Two kinds of guests: "fake VMs" (a network namespace inside the host with a veth in the network's bridge, carrying
the desktop's MAC, asking for its address with busybox's udhcpc and pinging its peer; the desktops are database rows,
the network part of provisioning and of a restart on another host is the portal's own), and real desktops booting the
guest OS (tests/harness/guest.py) through the portal's provisioning and ``desktop_failover``.
"""

import contextlib
import ipaddress
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import libvirt
import pytest
from celery import current_app

from compute import networking, services
from compute.hypervisor import drivers_close_all
from compute.models import Desktop, Endpoint, Host
from compute.networking import overlay
from network import services as network_services
from network.models import Address, Network
from tests.harness.guest import guest_address, guest_ping, wait_for_guest
from tests.network.conftest import desktop_row, tenant_network
from tests.testbed.hosts import add_host

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed, pytest.mark.worker]

ROOT = Path(__file__).resolve().parents[2]
UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc's hook: take the lease, and say what it was (address, router, the server that gave it).
[ "$1" = bound ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
echo "ip=$ip router=$router serverid=$serverid" > "$LEASE_FILE"
"""


def _wait(predicate, timeout=60.0, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


class TestbedApp:
    """The portal's Celery app sending on the testbed's broker, which the hosts' agents consume."""

    __test__ = False

    def __init__(self, broker: str):
        self.broker = broker

    def send_task(self, name, **kwargs):
        kwargs.pop("connection", None)
        with current_app.connection_for_write(self.broker) as conn:
            return current_app.send_task(name, connection=conn, **kwargs)


def _broker(testbed, monkeypatch) -> str:
    """The testbed broker's database the agents listen on; the portal's overlay tasks are sent there."""
    broker = testbed.broker_url.rsplit("/", 1)[0] + "/6"
    monkeypatch.setattr(overlay, "current_app", TestbedApp(broker))
    return broker


def _agent(host, db, broker: str) -> subprocess.Popen:
    """``manage.py host_agent`` inside the testbed host, on the test's database and broker."""
    database_url = f"mysql://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}@localhost/{db['NAME']}"
    return host.popen(
        sys.executable,
        "manage.py",
        "host_agent",
        "--host",
        host.name,
        cwd=ROOT,
        env={"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def span(testbed, scenario, settings, monkeypatch):
    """The three testbed hosts added with their data addresses, names of this run's own, their agents
    started on demand (``start(name)``); everything the test made on the hosts goes at the end."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("the testbed's agents reach the database through MariaDB's socket: run on MariaDB")
    uid = uuid.uuid4().hex[:4]
    broker = _broker(testbed, monkeypatch)
    for host in testbed:
        add_host(host)
        services.host_data_address_set(actor=scenario.sysadmin, name=host.name, data_address=host.data_address)
    # This run's own libvirt and device names: a previous run's leftovers never clash.
    Endpoint.objects.filter(name__in=[h.name for h in testbed]).update(
        options={"network_prefix": f"sp{uid}-", "bridge_prefix": f"sp{uid}", "filter_prefix": f"sp{uid}-fw-"}
    )
    agents: dict[str, subprocess.Popen] = {}

    def start(name):
        agents[name] = _agent(testbed[name], db, broker)

    try:
        yield start, uid
    finally:
        for agent in agents.values():
            agent.terminate()
        for agent in agents.values():
            agent.wait(timeout=30)
        drivers_close_all()
        _clean(testbed, uid)


def _overlay_clean(testbed):
    """The agents' VXLAN devices and DHCP-over-the-tunnel chain, off every host."""
    for host in testbed:
        for chain, flag in (("INPUT", "-i"), ("FORWARD", "-i"), ("FORWARD", "-o"), ("OUTPUT", "-o")):
            host.run("ebtables", "-D", chain, flag, "ccvx+", "-j", "CC-SPAN-DHCP", check=False)
        host.run("sh", "-c", "ebtables -F CC-SPAN-DHCP && ebtables -X CC-SPAN-DHCP", check=False)
        host.run("sh", "-c", "for d in $(ip -o link show | grep -o 'ccvx[0-9]*' | sort -u); do ip link del $d; done")


def _clean(testbed, uid):
    _overlay_clean(testbed)
    for host in testbed:
        host.run("sh", "-c", f"for n in $(ip netns list | grep -o '^sp{uid}[a-z0-9]*'); do ip netns del $n; done")
        conn = host.connect()
        try:
            for net in conn.listAllNetworks(0):
                if net.name().startswith(f"sp{uid}-"):
                    with contextlib.suppress(libvirt.libvirtError):
                        net.destroy()
                    with contextlib.suppress(libvirt.libvirtError):
                        net.undefine()
            for name in conn.listNWFilters():
                if name.startswith(f"sp{uid}-fw-"):
                    with contextlib.suppress(libvirt.libvirtError):
                        conn.nwfilterLookupByName(name).undefine()
        finally:
            conn.close()
    for path in Path("/tmp").glob(f"sp{uid}*"):
        path.unlink()


def _peers(host, device: str) -> set[str]:
    out = host.run("bridge", "fdb", "show", "dev", device, check=False).stdout
    return {line.split(" dst ")[1].split()[0] for line in out.splitlines() if line.startswith("00:00:00:00:00:00")}


def _fake_vm(host, uid: str, vm: str, *, bridge: str, mac: str) -> Path:
    """A netns ``sp<uid><vm>`` in ``host`` with eth0 (``mac``) bridged into ``bridge``, its address asked by
    DHCP; returns the file where udhcpc's hook wrote the lease."""
    ns, lease, script = f"sp{uid}{vm}", Path(f"/tmp/sp{uid}{vm}.lease"), Path(f"/tmp/sp{uid}{vm}.sh")
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    host.run(
        "sh",
        "-ec",
        f"ip netns add {ns}; ip link add {ns} type veth peer name eth0 netns {ns};"
        f"ip link set {ns} master {bridge} up;"
        f"ip netns exec {ns} ip link set eth0 address {mac};"
        f"ip netns exec {ns} ip link set eth0 up; ip netns exec {ns} ip link set lo up",
    )
    host.run(
        "ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "10", "-T", "1",
        "-s", str(script), env={"LEASE_FILE": str(lease)}, timeout=60,
    )  # fmt: skip
    return lease


def _lease(path: Path) -> dict[str, str]:
    return dict(part.split("=", 1) for part in path.read_text().split())


def _ping(host, uid: str, vm: str, ip: str) -> bool:
    """Whether the fake VM reaches ``ip`` (a few tries: a port just added to a bridge may still be learning)."""

    def once():
        argv = ("ip", "netns", "exec", f"sp{uid}{vm}", "busybox", "ping", "-c", "1", "-W", "1", ip)
        return host.run(*argv, check=False).returncode == 0

    return _wait(once, timeout=15, every=0.2)


def _on(scenario, network, host_name: str) -> tuple[Desktop, Address]:
    """A desktop row on the host with its NIC, its network prepared there by the portal (as provisioning does)."""
    desktop = desktop_row(scenario.tenant_a, Endpoint.objects.get(name=host_name), owner=scenario.student)
    Desktop.objects.filter(pk=desktop.pk).update(host=Host.objects.get(name=host_name))
    (nic,) = networking.desktop_nics_allocate(desktop=desktop)
    networking.desktop_bindings_push(desktop=desktop)
    return desktop, nic


def _dhcp_macs(host_name: str, network) -> set[str]:
    from compute.hypervisor import driver_for

    endpoint = Endpoint.objects.get(name=host_name)
    return {h.mac for h in driver_for(endpoint).dhcp_hosts(networking.libvirt_network_name(network, endpoint))}


def _dhcp_address(network, host_name: str) -> str:
    return Address.objects.get(subnet__network=network, kind=Address.Kind.RESERVED, hostname=f"dhcp-{host_name}").ip


@pytest.mark.django_db(transaction=True)  # the agents read what the test committed
def test_a_desktop_on_h1_pings_one_on_h3_over_vxlan_each_addressed_by_its_own_hosts_dhcp(testbed, scenario, span):
    start, uid = span
    network = tenant_network(scenario, cidr="10.231.7.0/24")
    on_h1, nic1 = _on(scenario, network, "h1")
    on_h3, nic3 = _on(scenario, network, "h3")
    network.refresh_from_db()
    vni, bridge = network.segment_id, networking.bridge_name(network, on_h1.endpoint)
    assert network.segment_type == "vxlan" and vni
    # Each host's DHCP holds only its own desktop's binding.
    assert _dhcp_macs("h1", network) == {nic1.mac} and _dhcp_macs("h3", network) == {nic3.mac}

    # The syncs wait in the hosts' queues until their agents run them, on the hosts.
    start("h1")
    start("h3")
    h1, h3 = testbed["h1"], testbed["h3"]
    device = f"ccvx{vni}"
    assert _wait(lambda: _peers(h1, device) == {h3.data_address}), _peers(h1, device)
    assert _wait(lambda: _peers(h3, device) == {h1.data_address}), _peers(h3, device)
    assert f"master {bridge}" in h1.run("ip", "-d", "link", "show", "dev", device).stdout
    assert "nolearning" in h3.run("ip", "-d", "link", "show", "dev", device).stdout
    # DHCP does not cross the tunnel: each host's dnsmasq sees only its own desktops' requests.
    assert "-i ccvx+ -j CC-SPAN-DHCP" in h1.run("ebtables", "-L", "INPUT").stdout
    # The gateway is not on the hosts' bridges: each holds its own DHCP address.
    assert f"inet {_dhcp_address(network, 'h1')}/24" in h1.run("ip", "addr", "show", "dev", bridge).stdout
    assert "10.231.7.1/" not in h1.run("ip", "addr", "show", "dev", bridge).stdout

    lease1 = _lease(_fake_vm(h1, uid, "a", bridge=bridge, mac=nic1.mac))
    lease3 = _lease(_fake_vm(h3, uid, "c", bridge=networking.bridge_name(network, on_h3.endpoint), mac=nic3.mac))

    assert lease1 == {"ip": nic1.ip, "router": "10.231.7.1", "serverid": _dhcp_address(network, "h1")}
    assert lease3 == {"ip": nic3.ip, "router": "10.231.7.1", "serverid": _dhcp_address(network, "h3")}
    assert _ping(h1, uid, "a", nic3.ip), "h1's desktop does not reach h3's over the VXLAN"
    assert _ping(h3, uid, "c", nic1.ip)


@pytest.mark.django_db(transaction=True)
def test_dhcp_follows_a_desktop_restarted_on_another_host_with_its_ip_and_mac(testbed, scenario, span):
    start, uid = span
    for name in ("h1", "h2", "h3"):
        start(name)
    network = tenant_network(scenario, cidr="10.231.8.0/24")
    moving, nic = _on(scenario, network, "h1")
    _peer, peer_nic = _on(scenario, network, "h3")
    h1, h2, h3 = testbed["h1"], testbed["h2"], testbed["h3"]
    network.refresh_from_db()
    device = f"ccvx{network.segment_id}"
    assert _wait(lambda: _peers(h3, device) == {h1.data_address})
    _fake_vm(h3, uid, "c", bridge=networking.bridge_name(network, Endpoint.objects.get(name="h3")), mac=peer_nic.mac)
    before = _lease(_fake_vm(h1, uid, "a", bridge=networking.bridge_name(network, moving.endpoint), mac=nic.mac))
    assert before["ip"] == nic.ip and _ping(h1, uid, "a", peer_nic.ip)

    # h1 is lost; the desktop is restarted on h2 (desktop_failover moves the row, then pushes the bindings).
    h1.run("ip", "netns", "del", f"sp{uid}a")
    Desktop.objects.filter(pk=moving.pk).update(
        endpoint=Endpoint.objects.get(name="h2"), host=Host.objects.get(name="h2")
    )
    report = networking.desktop_bindings_push(desktop=moving)

    assert report["pushed"] == [nic.mac] and report["removed_from"] == {"h1": [nic.mac]}
    assert _dhcp_macs("h2", network) == {nic.mac} and _dhcp_macs("h1", network) == set()
    # h2 joined the network: every holder floods to it now, and it to them.
    assert _wait(lambda: _peers(h2, device) == {h1.data_address, h3.data_address}), _peers(h2, device)
    assert _wait(lambda: h2.data_address in _peers(h3, device)), _peers(h3, device)
    bridge2 = networking.bridge_name(network, Endpoint.objects.get(name="h2"))
    after = _lease(_fake_vm(h2, uid, "b", bridge=bridge2, mac=nic.mac))
    assert after == {"ip": nic.ip, "router": "10.231.8.1", "serverid": _dhcp_address(network, "h2")}
    assert _ping(h2, uid, "b", peer_nic.ip) and _ping(h3, uid, "c", nic.ip)
    assert Network.objects.get(pk=network.pk).segment_id == network.segment_id


# Real desktops: the guest OS (tests/harness/guest.py) booted by the portal's own provisioning.


@pytest.fixture
def guest_span(testbed, scenario, guest_env, settings, monkeypatch):
    """guest_env's hosts with their data addresses and their agents running: networks span them."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("the testbed's agents reach the database through MariaDB's socket: run on MariaDB")
    broker = _broker(testbed, monkeypatch)
    for host in testbed:
        services.host_data_address_set(actor=scenario.sysadmin, name=host.name, data_address=host.data_address)
    agents = [_agent(host, db, broker) for host in testbed]
    try:
        yield guest_env
    finally:
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.wait(timeout=30)
        _overlay_clean(testbed)


def _guest_desktop(scenario, version, flavor, host_name: str, name: str) -> Desktop:
    desktop = services.desktop_create(
        actor=scenario.sysadmin,
        tenant=scenario.tenant_a,
        image_version=version,
        flavor=flavor,
        owner=scenario.student,
        name=name,
        endpoint=Endpoint.objects.get(name=host_name),
    )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
    assert desktop.host.name == host_name
    return desktop


def _guests_ping(desktop, peer_ip: str) -> bool:
    """The guest answers its peer within a few tries (the hosts' agents may still be adding the tunnel)."""
    return _wait(lambda: guest_ping(desktop, peer_ip), timeout=60, every=1)


@pytest.mark.django_db(transaction=True)  # the tasks start on commit; the agents read what the test committed
def test_real_guests_on_h1_and_h3_ping_over_vxlan_and_dhcp_follows_one_restarted_on_h2(
    testbed, scenario, guest_span, eager
):
    env = guest_span
    network = network_services.network_create(
        actor=scenario.sysadmin, tenant=scenario.tenant_a, name="span", cidr=env.free_cidr()
    )
    env.open_port(scenario.sysadmin, scenario.tenant_a, 80)
    on_h1 = _guest_desktop(scenario, env.versions["east"], env.flavor, "h1", "span-a")
    on_h3 = _guest_desktop(scenario, env.versions["west"], env.flavor, "h3", "span-c")
    network.refresh_from_db()
    assert network.segment_type == "vxlan" and network.segment_id

    # Each guest took the IP and MAC IPAM gave it, from its own host's DHCP.
    for desktop in (on_h1, on_h3):
        seen = guest_address(desktop)
        assert (seen["ip"], seen["mac"]) == (desktop.guest_ip, desktop.mac)
        assert _dhcp_macs(desktop.host.name, network) == {desktop.mac}
        wait_for_guest(desktop, r"CCGUEST up port=80")
    device = f"ccvx{network.segment_id}"
    assert _wait(lambda: _peers(testbed["h1"], device) == {testbed["h3"].data_address}), "no tunnel h1 -> h3"
    assert _guests_ping(on_h1, on_h3.guest_ip), "h1's guest does not reach h3's over the VXLAN"
    assert _guests_ping(on_h3, on_h1.guest_ip)
    assert not guest_ping(on_h1, str(ipaddress.IPv4Address(on_h3.guest_ip) + 100))  # nobody there

    # h1 is lost with its guest; desktop_failover restarts the desktop on h2 with its IP and MAC.
    h1 = testbed["h1"].connect()
    try:
        domain = h1.lookupByName(on_h1.vm_name)
        domain.destroy()
        domain.undefine()
    finally:
        h1.close()
    report = networking.desktop_failover(desktop=on_h1, target=Endpoint.objects.get(name="h2"))
    moved = Desktop.objects.get(pk=on_h1.pk)

    assert report["to"] == "h2" and report["mac"] == on_h1.mac and moved.host.name == "h2"
    assert _dhcp_macs("h2", network) == {on_h1.mac} and _dhcp_macs("h1", network) == set()
    seen = guest_address(moved)
    assert (seen["ip"], seen["mac"]) == (on_h1.guest_ip, on_h1.mac)
    wait_for_guest(moved, r"CCGUEST up port=80")
    assert _wait(lambda: testbed["h2"].data_address in _peers(testbed["h3"], device)), "no tunnel h3 -> h2"
    assert _guests_ping(moved, on_h3.guest_ip), "the guest restarted on h2 does not reach h3's"
    assert _guests_ping(on_h3, moved.guest_ip)

"""Gateway, SNAT, elastic IPs and port forwards on a network node of the testbed, applied by its own agent.

h1 is the network node of site east (``host_add --network-node``) and its agent (``manage.py host_agent``)
runs inside it. This machine plays the campus: it routes the testbed's public pool (``_public``) to
h1's management address (removed after), reaches the desktops at their public addresses, and sees
who connects or pings it (SNAT).

- The namespace tests: the desktops are rows of the portal on h1 whose NICs IPAM allocated, each
  "VM" a network namespace inside h1 with the desktop's address on a veth in the network's bridge
  (``bridge_name(network, endpoint)``), serving HTTP on port 80: what waits, what the agent applies,
  drift repaired, an address unbound.
- The guest OS tests (tests/harness/guest.py): desktops provisioned by the portal boot a real guest;
  the one on h2 reaches h1's gateway over the overlay (VXLAN devices and forwarding entries made by
  both hosts' agents from the database), which is issue 16's acceptance on the product's own path.
"""

import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.core.management import call_command

from compute import networking
from compute.models import Endpoint, Host
from network import services as network_services
from network.models import ElasticIP, PortForward, PublicPool
from tests.harness.testbed import agents_broker_url
from tests.network.conftest import desktop_row, tenant_network

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed, pytest.mark.worker]

ROOT = Path(__file__).resolve().parents[2]
CIDR = "10.77.61.0/24"


def _public(testbed) -> str:
    """The campus's public pool for this testbed, routed from this machine to its network node: one per
    management network (198.18.<its third octet>.0/28), so testbeds of other checkouts route their own."""
    return f"198.18.{testbed['h1'].address.split('.')[2]}.0/28"


def _wait(predicate, timeout=60.0, step=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(step)
    return False


def _get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - a test URL
        return answer.read().decode().strip()


def _ping(address: str, timeout: float = 3.0) -> bool:
    """One ICMP echo from this machine (no ping binary here): whether the reply came."""
    ident = 0x4343
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"campuscloud!"  # an even length
    checksum = sum(struct.unpack(f"!{len(header) // 2}H", header))
    checksum = (checksum >> 16) + (checksum & 0xFFFF)
    checksum = ~(checksum + (checksum >> 16)) & 0xFFFF
    packet = header[:2] + struct.pack("!H", checksum) + header[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (address, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data, peer = sock.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4 :]
            if peer[0] == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return True
    return False


@pytest.fixture
def portal_broker(testbed, monkeypatch):
    """The portal side sends to the testbed's own Redis (the agents' broker), on this test process's database."""
    from portal.celery import app

    url = agents_broker_url(testbed)
    before = app.conf.broker_url
    redis.Redis.from_url(url).flushdb()

    def switch(to):
        # Celery reads CELERY_BROKER_URL from the environment before its own setting.
        monkeypatch.setenv("CELERY_BROKER_URL", to)
        app.conf.broker_url = to
        app._pool = None
        app.amqp._producer_pool = None

    switch(url)
    assert app.connection_for_write().as_uri().endswith(url.rsplit("@", 1)[-1].split("//", 1)[-1])
    yield url
    switch(before)
    redis.Redis.from_url(url).flushdb()


class FakeVMs:
    """Network namespaces inside a testbed host standing for desktops on a network's bridge."""

    def __init__(self, host, bridge: str, gateway: str, prefixlen: int):
        self.host, self.bridge, self.gateway, self.prefixlen = host, bridge, gateway, prefixlen
        self.names: list[str] = []
        self.servers: list[subprocess.Popen] = []
        host.run("ip", "link", "del", bridge, check=False)  # a failed run's
        host.run("ip", "link", "add", bridge, "type", "bridge")
        host.run("ip", "link", "set", bridge, "up")

    def add(self, name: str, ip: str, tmp_path: Path) -> None:
        run = self.host.run
        run("ip", "netns", "del", name, check=False)  # a failed run's
        run("ip", "netns", "add", name)
        self.names.append(name)
        run("ip", "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "link", "set", f"v{name}", "master", self.bridge, "up")
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", name, "addr", "add", f"{ip}/{self.prefixlen}", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        run("ip", "-n", name, "route", "add", "default", "via", self.gateway)
        site = tmp_path / name
        site.mkdir()
        (site / "index.html").write_text(name)
        self.servers.append(
            self.host.popen(
                "ip", "netns", "exec", name, sys.executable, "-m", "http.server", "80", "--directory", str(site)
            )
        )

    def connect(self, name: str, address: str, port: int) -> None:
        """From inside the fake VM: one TCP connection to address:port."""
        script = f"import socket; socket.create_connection(({address!r}, {port}), timeout=5).close()"
        self.host.run("ip", "netns", "exec", name, sys.executable, "-c", script)

    def close(self) -> None:
        for server in self.servers:
            server.terminate()
            server.wait(timeout=10)
        for name in self.names:
            self.host.run("ip", "netns", "del", name, check=False)
        self.host.run("ip", "link", "del", self.bridge, check=False)


class Listener:
    """A TCP listener on this machine that records the source address of each connection."""

    def __init__(self, address: str):
        self.sock = socket.create_server((address, 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.close()

    def close(self):
        self.sock.close()


class PingWatch:
    """Who pings ``address`` (this machine): the sources of the ICMP echo requests it receives."""

    def __init__(self, address: str):
        self.address = address
        self.sources: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.settimeout(0.5)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.done.is_set():
            try:
                data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            icmp = data[(data[0] & 0x0F) * 4 :]
            if icmp and icmp[0] == 8 and socket.inet_ntoa(data[16:20]) == self.address:
                self.sources.append(peer[0])

    def close(self):
        self.done.set()
        self.thread.join(timeout=5)
        self.sock.close()


def _agent(host, broker: str, settings):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("the testbed's agents reach the database through MariaDB's socket: run on MariaDB")
    database_url = f"mysql://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}@localhost/{db['NAME']}"
    return host.popen(
        sys.executable,
        "manage.py",
        "host_agent",
        "--host",
        host.name,
        cwd=ROOT,
        env={"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker},
    )


def _stop(agent) -> None:
    agent.terminate()
    try:
        agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait(timeout=10)


def _host_cleanup(host, network_id: int) -> None:
    """What the agent made on the host: the gateway namespace and the host's CCGW chains."""
    host.run("ip", "netns", "del", f"ccgw{network_id}", check=False)
    script = "from compute.drivers.hostfw import HostFirewall; HostFirewall('CCGW').teardown()"
    host.run(sys.executable, "-c", script, check=False)


def _add_host(host, *extra: str) -> None:
    out = []

    class Out:
        def write(self, text):
            out.append(text)

    call_command(
        "host_add",
        "--name",
        host.name,
        "--uri",
        host.uri,
        "--site",
        host.site,
        "--cluster",
        f"{host.site}-general",
        "--domain-type",
        "qemu",
        *extra,
        "--json",
        stdout=Out(),
    )
    assert json.loads("".join(out))["host"] == host.name


def _applied(model, pk) -> tuple[bool, str, str]:
    row = model.objects.get(pk=pk)
    return row.applied, row.applied_to, row.apply_note


@pytest.mark.django_db(transaction=True)
def test_elastic_ips_and_forwards_reach_desktops_through_the_network_node_and_desktops_leave_through_its_gateway(
    testbed, scenario, settings, portal_broker, tmp_path
):
    h1, public = testbed["h1"], _public(testbed)
    _add_host(h1, "--network-node")
    node = Host.objects.get(name=h1.name)
    assert node.is_network_node and node.address == h1.address
    endpoint = Endpoint.objects.get(name=h1.name)
    network = tenant_network(scenario, cidr=CIDR, name="edge")
    subnet = network.subnets.get()
    desktops = [desktop_row(scenario.tenant_a, endpoint) for _ in range(2)]
    (a1,) = networking.desktop_nics_allocate(desktop=desktops[0], network=network)
    (a2,) = networking.desktop_nics_allocate(desktop=desktops[1], network=network)
    here = h1.address.rsplit(".", 1)[0] + ".1"  # this machine on the management network
    vms = FakeVMs(h1, networking.bridge_name(network, endpoint), subnet.gateway, 24)
    listener = Listener(here)
    queue = redis.Redis.from_url(portal_broker)
    agent = None
    subprocess.run(["ip", "route", "replace", public, "via", h1.address], check=True)
    try:
        vms.add("vm1", a1.ip, tmp_path)
        vms.add("vm2", a2.ip, tmp_path)
        pool = PublicPool.objects.create(name="edge-pool", cidr=public)
        eip1 = network_services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
        eip1 = network_services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip1, address=a1)
        eip2 = network_services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
        forward = network_services.port_forward_create(
            actor=scenario.tenant_admin, eip=eip2, address=a2, public_port=8080, private_port=80
        )

        # No agent yet: the work waits in h1's queue, the rows say so, nothing is applied anywhere.
        report = networking.forwarding_apply(eip_id=eip1.pk)
        networking.forwarding_apply(eip_id=eip2.pk)
        assert report["errors"] == [] and report["waiting"]
        applied, applied_to, note = _applied(ElasticIP, eip1.pk)
        assert (applied, applied_to) == (False, "") and "等待主机代理" in note and "代理离线" in note
        assert queue.llen(node.queue) == 2
        assert f"ccgw{network.pk}" not in h1.run("ip", "netns", "list").stdout
        with pytest.raises(OSError):
            _get(f"http://{eip1.ip}/", timeout=1)

        # The agent comes: it applies what waited, on its own host; not while the bridge holds the
        # gateway itself (libvirt's NAT model), which would make two gateways answer.
        h1.run("ip", "addr", "add", f"{subnet.gateway}/24", "dev", vms.bridge)
        agent = _agent(h1, portal_broker, settings)
        assert _wait(lambda: "holds the gateway" in _applied(ElasticIP, eip1.pk)[2]), _applied(ElasticIP, eip1.pk)
        assert not ElasticIP.objects.get(pk=eip1.pk).applied
        h1.run("ip", "addr", "del", f"{subnet.gateway}/24", "dev", vms.bridge)
        networking.forwarding_apply(eip_id=eip1.pk)
        assert _wait(lambda: _applied(ElasticIP, eip1.pk)[:2] == (True, h1.name)), _applied(ElasticIP, eip1.pk)
        assert _wait(lambda: _applied(PortForward, forward.pk)[:2] == (True, h1.name))
        assert _wait(lambda: queue.llen(node.queue) == 0)
        assert f"ccgw{network.pk}" in h1.run("ip", "netns", "list").stdout

        # From the campus (this machine): the 1:1 address and the forwarded port reach their desktops.
        assert _wait(lambda: _get(f"http://{eip1.ip}/") == "vm1", timeout=20)
        assert _get(f"http://{eip2.ip}:8080/") == "vm2"
        assert _ping(eip1.ip), f"{eip1.ip} does not answer ping"

        # Outwards: a desktop without an elastic IP leaves as the network node; one with it, as its address.
        vms.connect("vm2", here, listener.port)
        vms.connect("vm1", here, listener.port)
        assert _wait(lambda: len(listener.peers) == 2, timeout=10)
        assert listener.peers == [h1.address, eip1.ip]

        # Drift on the node (a route and the namespace's DNAT gone): the periodic repair puts them back.
        h1.run("ip", "route", "del", f"{eip1.ip}/32")
        h1.run("ip", "netns", "exec", f"ccgw{network.pk}", "iptables", "-t", "nat", "-F", "CC-DNAT")
        with pytest.raises(OSError):
            _get(f"http://{eip1.ip}/", timeout=1)
        networking.forwarding_sync()
        assert _wait(lambda: _get(f"http://{eip1.ip}/", timeout=1) == "vm1", timeout=30)
        assert _get(f"http://{eip2.ip}:8080/") == "vm2"

        # Unbound: the 1:1 address goes from the node; the forward stays.
        network_services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip1, address=None)
        networking.forwarding_apply(eip_id=eip1.pk)
        assert _wait(lambda: eip1.ip not in h1.run("ip", "route", "show").stdout, timeout=30)
        with pytest.raises(OSError):
            _get(f"http://{eip1.ip}/", timeout=1)
        assert _get(f"http://{eip2.ip}:8080/") == "vm2"
    finally:
        if agent is not None:
            _stop(agent)
        subprocess.run(["ip", "route", "del", public], check=False, capture_output=True)
        listener.close()
        vms.close()
        _host_cleanup(h1, network.pk)


@pytest.fixture
def edge_guest_env(testbed, guest_boot, scenario):
    """``guest_env`` (tests/harness/guest.py), its image named for these tests."""
    from tests.harness.guest import guest_env_made

    with guest_env_made(testbed, guest_boot, scenario, letter="e", name="CampusCloud guest (edge)") as env:
        yield env


@pytest.mark.django_db(transaction=True)
def test_a_real_guest_on_the_network_node_answers_at_its_elastic_ip_and_reaches_the_campus_through_the_gateway(
    testbed, scenario, settings, edge_guest_env, eager, portal_broker
):
    """The guest OS (tests/harness/guest.py) in a desktop made by the portal's own services on h1."""
    guest_env = edge_guest_env
    from compute import services
    from compute.networking.specs import bridge_name
    from network import services as network_services
    from tests.harness.guest import guest_address, wait_for_guest

    h1, public = testbed["h1"], _public(testbed)
    Host.objects.filter(name="h2").update(state=Host.State.MAINTENANCE)  # east places on h1 only
    Host.objects.filter(name="h1").update(is_network_node=True)
    services.host_data_address_set(actor=scenario.sysadmin, name=h1.name, data_address=h1.data_address)
    cidr = guest_env.free_cidr()
    network = network_services.network_create(actor=scenario.sysadmin, tenant=scenario.tenant_a, name="edge", cidr=cidr)
    subnet = network.subnets.get()
    guest_env.open_port(scenario.sysadmin, scenario.tenant_a, 80)
    desktop = services.desktop_create(
        actor=scenario.sysadmin,
        tenant=scenario.tenant_a,
        image_version=guest_env.versions["east"],
        flavor=guest_env.flavor,
        owner=scenario.student,
        name="edge-guest",
    )
    desktop.refresh_from_db()
    assert desktop.host.name == "h1", desktop.error_reason
    assert guest_address(desktop)["ip"] == desktop.guest_ip
    wait_for_guest(desktop, r"CCGUEST up port=80")
    # From here on tasks go to the brokers' queues: the edge work must reach h1's agent, never run here.
    eager.conf.task_always_eager = False
    # h1 holds its networks as hosts with a data address do (span): the gateway is on no bridge and
    # libvirt does no NAT there, so the gateway namespace alone answers for it.
    assert (
        f"inet {subnet.gateway}/"
        not in h1.run("ip", "addr", "show", "dev", bridge_name(network, desktop.endpoint)).stdout
    )
    here = h1.address.rsplit(".", 1)[0] + ".1"
    pool = PublicPool.objects.create(name="edge-guest-pool", cidr=public)
    eip = network_services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    eip = network_services.elastic_ip_associate(
        actor=scenario.tenant_admin, eip=eip, address=networking.desktop_addresses(desktop)[0]
    )
    networking.forwarding_apply(eip_id=eip.pk)
    agent = _agent(h1, portal_broker, settings)
    subprocess.run(["ip", "route", "replace", public, "via", h1.address], check=True)
    try:
        assert _wait(lambda: _applied(ElasticIP, eip.pk)[:2] == (True, h1.name)), _applied(ElasticIP, eip.pk)
        assert _wait(lambda: _get(f"http://{eip.ip}/").split() == [desktop.vm_name, desktop.guest_ip], timeout=30)
        # The guest pings this machine: out through h1's gateway, back to its elastic IP.
        assert _get(f"http://{eip.ip}/cgi-bin/ping?{here}", timeout=15).split() == [here, "ok"]
    finally:
        _stop(agent)
        subprocess.run(["ip", "route", "del", public], check=False, capture_output=True)
        _host_cleanup(h1, network.pk)
        network.refresh_from_db()
        _overlay_clean((h1,), f"ccvx{network.segment_id}")


def _flood_peers(host, device: str) -> set[str]:
    """The peers a VXLAN device of the host floods to (its all-zero forwarding entries)."""
    out = host.run("bridge", "-j", "fdb", "show", "dev", device, check=False).stdout
    entries = json.loads(out) if out.strip().startswith("[") else []
    return {e["dst"] for e in entries if e.get("mac") == "00:00:00:00:00:00" and e.get("dst")}


def _overlay_clean(hosts, device: str) -> None:
    """What the agents made for the overlay: the network's VXLAN device and the DHCP fence on the tunnels."""
    for host in hosts:
        host.run("ip", "link", "del", device, check=False)
        for chain, flag in (("INPUT", "-i"), ("FORWARD", "-i"), ("FORWARD", "-o"), ("OUTPUT", "-o")):
            host.run("ebtables", "-D", chain, flag, "ccvx+", "-j", "CC-SPAN-DHCP", check=False)
        host.run("sh", "-c", "ebtables -F CC-SPAN-DHCP && ebtables -X CC-SPAN-DHCP", check=False)


@pytest.mark.django_db(transaction=True)  # the tasks start on commit; the agents read what the test committed
def test_a_real_guest_on_h2_answers_at_its_elastic_ip_over_the_overlay_and_leaves_through_h1s_gateway(
    testbed, scenario, settings, edge_guest_env, eager, portal_broker
):
    """Issue 16's acceptance on the product's own path: a desktop the portal provisions on h2 boots the
    guest OS; its network spans h1 (site east's network node) and h2 over the VXLAN the two hosts' agents
    make from the database (``host_network_sync``), and its gateway, SNAT, elastic IP and port forward are
    in h1's namespace, made by h1's agent (``edge_sync``). This machine is the campus."""
    from compute import services
    from network.models import SegmentType
    from tests.harness.guest import guest_http, guest_ping, wait_for_guest

    env, admin, tenant = edge_guest_env, scenario.sysadmin, scenario.tenant_a
    h1, h2, public = testbed["h1"], testbed["h2"], _public(testbed)
    here = h1.address.rsplit(".", 1)[0] + ".1"  # this machine on the management network
    # h1 becomes east's network node: its agent is asked (on its queue; no agent runs yet).
    eager.conf.task_always_eager = False
    services.host_network_node_set(actor=admin, name=h1.name, on=True)
    eager.conf.task_always_eager = True
    for host in (h1, h2):  # networks on them span hosts over the data network
        services.host_data_address_set(actor=admin, name=host.name, data_address=host.data_address)
    network = network_services.network_create(actor=admin, tenant=tenant, name="edge-span", cidr=env.free_cidr())
    subnet = network.subnets.get()
    env.open_port(admin, tenant, 80)
    desktop = env.desktop_on("h2", actor=admin, tenant=tenant, owner=scenario.student, name="edge-h2")
    network.refresh_from_db()
    assert network.segment_type == SegmentType.VXLAN and network.segment_id
    device = f"ccvx{network.segment_id}"
    bridge1 = networking.bridge_name(network, Endpoint.objects.get(name=h1.name))
    bridge2 = networking.bridge_name(network, desktop.endpoint)
    # The guest took its address from h2's own DHCP; the gateway is on no host's bridge.
    assert wait_for_guest(desktop, r"CCGUEST ip=(\S+) .* gw=(\S+)").groups() == (desktop.guest_ip, subnet.gateway)
    wait_for_guest(desktop, r"CCGUEST up port=80")
    assert f"inet {subnet.gateway}/" not in h2.run("ip", "addr", "show", "dev", bridge2).stdout
    # From here on every task goes to the brokers: the hosts' work must reach their agents, never run here.
    eager.conf.task_always_eager = False
    (nic,) = networking.desktop_addresses(desktop)
    pool = PublicPool.objects.create(name="edge-span-pool", cidr=public)
    eip = network_services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=tenant, pool=pool)
    eip = network_services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=nic)
    eip2 = network_services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=tenant, pool=pool)
    forward = network_services.port_forward_create(
        actor=scenario.tenant_admin, eip=eip2, address=nic, public_port=8080, private_port=80
    )
    networking.forwarding_apply(eip_id=eip.pk)
    networking.forwarding_apply(eip_id=eip2.pk)
    assert not ElasticIP.objects.get(pk=eip.pk).applied  # no agent yet: waiting in h1's queue
    watch, agents = PingWatch(here), []
    subprocess.run(["ip", "route", "replace", public, "via", h1.address], check=True)
    try:
        agents = [_agent(h1, portal_broker, settings), _agent(h2, portal_broker, settings)]

        # The overlay, made by each host's agent: one VXLAN device in the network's bridge, flooding to the other.
        assert _wait(lambda: _flood_peers(h2, device) == {h1.data_address}), _flood_peers(h2, device)
        assert _wait(lambda: _flood_peers(h1, device) == {h2.data_address}), _flood_peers(h1, device)
        assert f"master {bridge1}" in h1.run("ip", "-d", "link", "show", "dev", device).stdout
        assert f"master {bridge2}" in h2.run("ip", "-d", "link", "show", "dev", device).stdout
        # The edge, made by h1's agent on h1 alone (the network node), none of it on h2 where the desktop runs.
        assert _wait(lambda: _applied(ElasticIP, eip.pk)[:2] == (True, h1.name)), _applied(ElasticIP, eip.pk)
        assert _wait(lambda: _applied(PortForward, forward.pk)[:2] == (True, h1.name)), "the forward is not on h1"
        assert f"ccgw{network.pk}" in h1.run("ip", "netns", "list").stdout
        assert "ccgw" not in h2.run("ip", "netns", "list").stdout
        assert "-j CC" not in h2.run("iptables", "-t", "nat", "-S").stdout
        assert f"inet {subnet.gateway}/" not in h1.run("ip", "addr", "show", "dev", bridge1).stdout

        # From the campus: the elastic IP and the forwarded port reach the guest on h2, through h1.
        answer = [desktop.vm_name, desktop.guest_ip]
        assert _wait(lambda: _get(f"http://{eip.ip}/").split() == answer, timeout=30), "no answer at the elastic IP"
        assert _get(f"http://{eip2.ip}:8080/").split() == answer
        assert _ping(eip.ip), f"{eip.ip} does not answer ping"

        # Outwards through h1's gateway: the campus sees the guest as its elastic IP ...
        assert guest_ping(desktop, here), "the guest on h2 does not reach the campus"
        assert _wait(lambda: eip.ip in watch.sources, timeout=10), watch.sources
        assert h2.address not in watch.sources and desktop.guest_ip not in watch.sources
        # ... and, unbound, as the network node's address (masqueraded); the forward stays.
        network_services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=None)
        networking.forwarding_apply(eip_id=eip.pk)
        assert _wait(lambda: eip.ip not in h1.run("ip", "route", "show").stdout, timeout=30)
        seen = len(watch.sources)
        assert guest_ping(desktop, here)
        assert _wait(lambda: h1.address in watch.sources[seen:], timeout=10), watch.sources
        assert eip.ip not in watch.sources[seen:]
        with pytest.raises(OSError):
            _get(f"http://{eip.ip}/", timeout=1)
        assert _get(f"http://{eip2.ip}:8080/").split() == answer
        assert guest_http(desktop).split() == answer  # and h2 still reaches it on its own bridge
    finally:
        for agent in agents:
            _stop(agent)
        subprocess.run(["ip", "route", "del", public], check=False, capture_output=True)
        watch.close()
        _host_cleanup(h1, network.pk)
        _overlay_clean((h1, h2), device)

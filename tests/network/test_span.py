"""Networks that span hosts (compute.networking.overlay): which peers each host floods to, the VNI a network
gets, the per-host DHCP address and libvirt network, who is told to sync, and the agent's sync against a
model of the kernel's devices. Hosts are libvirt test-driver hosts with data addresses; the real VXLAN
between testbed hosts is tests/testbed/test_network_span.py."""

import json
import uuid

import pytest
from django.test import Client

from audit.models import AuditEvent
from common.errors import Conflict, InvalidInput
from compute import networking, services
from compute.drivers import xml as lx
from compute.drivers.base import DriverError, ErrorCode, ForwardMode, NetworkSpec
from compute.drivers.hostnet import HostNet, OverlaySpec
from compute.errors import ComputeError
from compute.hypervisor import driver_for
from compute.models import Endpoint, Host
from compute.networking import overlay
from network import services as network_services
from network.errors import NetworkError
from network.models import Address, Network, NetworkDeployment, SegmentRange, SegmentType
from tests.network.conftest import desktop_row, prefixed, tenant_network

pytestmark = pytest.mark.django_db


def _host(scenario, name, data_address="", site="east"):
    """A host on libvirt's test driver; its libvirt objects carry a prefix of its own, as test:///default is
    one hypervisor shared by every connection of the process."""
    host = services.host_add(
        actor=scenario.sysadmin,
        name=name,
        uri="test:///default",
        site=site,
        cluster=f"{site}-general",
        address=f"10.9.0.{len(name) * 10 + int(name[-1])}",
        domain_type="qemu",
        data_address=data_address,
    )
    Endpoint.objects.filter(pk=host.endpoint_id).update(options=prefixed(f"{name}{uuid.uuid4().hex[:4]}"))
    host.endpoint.refresh_from_db()
    return host


@pytest.fixture
def sent(monkeypatch):
    """The syncs sent to agents' queues: [(task name, args, queue)]."""
    calls = []

    class App:
        def send_task(self, name, args=None, queue=None, **kwargs):
            calls.append((name, list(args), queue))

    monkeypatch.setattr(overlay, "current_app", App())
    return calls


# --- forwarding entries and layout --------------------------------------------------------------------


def test_each_host_floods_to_every_other_holder_with_a_data_address_and_never_to_itself():
    holders = {1: {"h1", "h2", "h3"}, 2: {"h1", "h3", "local"}, 3: {"h2"}}
    addresses = {"h1": "10.0.1.1", "h2": "10.0.1.2", "h3": "10.0.1.3"}
    assert overlay.fdb_table(holders, addresses, "h1") == {1: ("10.0.1.2", "10.0.1.3"), 2: ("10.0.1.3",)}
    assert overlay.fdb_table(holders, addresses, "h2") == {1: ("10.0.1.1", "10.0.1.3"), 3: ()}
    # A host that shares no network floods nowhere; one without a data address is nobody's peer.
    assert overlay.fdb_table(holders, addresses, "h4") == {}
    assert overlay.fdb_table({1: {"h1", "local"}}, addresses, "h1") == {1: ()}


def test_a_hosts_layout_is_one_vxlan_device_per_network_it_holds_with_its_peers(scenario):
    h1, h2 = _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2", "10.0.1.2")
    _host(scenario, "h3")  # no data address: nobody's peer
    network = tenant_network(scenario)
    network_services.network_vni_ensure(network_id=network.pk)
    for name in ("h1", "h2", "h3"):
        NetworkDeployment.objects.create(network=network, endpoint=name)
    network.refresh_from_db()
    (spec,) = overlay.host_layout(h1)
    assert spec == OverlaySpec(
        bridge=networking.bridge_name(network, h1.endpoint),
        device=f"ccvx{network.segment_id}",
        vni=network.segment_id,
        local="10.0.1.1",
        peers=("10.0.1.2",),
    )
    assert overlay.host_layout(h2)[0].peers == ("10.0.1.1",)
    assert overlay.host_layout(Host.objects.get(name="h3")) == []


# --- VNI allocation -------------------------------------------------------------------------------------


def test_a_network_spanning_hosts_gets_the_lowest_free_vni_of_its_sites_range_once(scenario):
    SegmentRange.objects.create(site="main", kind=SegmentType.VXLAN, first=5000, last=5001)
    taken = tenant_network(scenario, name="taken", cidr="10.231.2.0/24", segment_type="vxlan", segment_id=5000)
    assert taken.segment_id == 5000
    network = tenant_network(scenario)
    assert network.segment_type == SegmentType.NONE

    first = network_services.network_vni_ensure(network_id=network.pk)
    again = network_services.network_vni_ensure(network_id=network.pk)

    assert (first.segment_type, first.segment_id) == (SegmentType.VXLAN, 5001)
    assert again.segment_id == 5001
    assert AuditEvent.objects.filter(detail__op="vni_allocated", detail__vni=5001).count() == 1


def test_an_exhausted_vxlan_range_is_a_clear_refusal_and_the_network_stays_as_it_was(scenario):
    SegmentRange.objects.create(site="main", kind=SegmentType.VXLAN, first=7000, last=7000)
    tenant_network(scenario, name="taken", cidr="10.231.2.0/24", segment_type="vxlan", segment_id=7000)
    network = tenant_network(scenario)
    with pytest.raises(Conflict) as excinfo:
        network_services.network_vni_ensure(network_id=network.pk)
    assert excinfo.value.code == NetworkError.SEGMENT_EXHAUSTED
    network.refresh_from_db()
    assert (network.segment_type, network.segment_id) == (SegmentType.NONE, None)


def test_a_network_on_a_vlan_keeps_its_vlan_when_it_spans_hosts(scenario):
    network = tenant_network(scenario, segment_type="vlan", segment_id=120)
    kept = network_services.network_vni_ensure(network_id=network.pk)
    assert (kept.segment_type, kept.segment_id) == (SegmentType.VLAN, 120)
    assert overlay.span_kind(kept) == "vlan"


# --- the libvirt network and DHCP on a spanning host -----------------------------------------------------


def test_on_a_host_with_a_data_address_the_bridge_holds_the_hosts_dhcp_address_not_the_gateway(scenario, sent):
    h1, h2 = _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2", "10.0.1.2")
    network = tenant_network(scenario, cidr="10.231.1.0/24")
    subnet = network.subnets.get()

    spec1 = overlay.span_spec(network, h1.endpoint)
    spec2 = overlay.span_spec(network, h2.endpoint)

    network.refresh_from_db()
    assert network.segment_type == SegmentType.VXLAN and network.segment_id
    assert spec1.forward == ForwardMode.OPEN and spec1.dhcp_router == subnet.gateway == "10.231.1.1"
    assert (spec1.dhcp_start, spec1.dhcp_end) == ("", "")  # static bindings only
    assert not spec1.stp  # one VXLAN port per bridge: no loop, and no STP delay for a new desktop
    reserved = dict(Address.objects.filter(kind=Address.Kind.RESERVED).values_list("hostname", "ip"))
    assert reserved == {"dhcp-h1": spec1.gateway, "dhcp-h2": spec2.gateway}
    assert spec1.gateway != spec2.gateway and subnet.gateway not in (spec1.gateway, spec2.gateway)
    # Asked again, a host keeps its address.
    assert overlay.span_spec(network, h1.endpoint).gateway == spec1.gateway
    # A desktop's NIC never gets a host's DHCP address.
    desktop = desktop_row(scenario.tenant_a, h1.endpoint)
    (nic,) = networking.desktop_nics_allocate(desktop=desktop)
    assert nic.ip not in (spec1.gateway, spec2.gateway)


def test_the_single_host_model_stays_for_an_endpoint_without_a_data_address(scenario):
    local = _host(scenario, "h1")
    network = tenant_network(scenario)
    assert overlay.span_spec(network, local.endpoint) is None
    network.refresh_from_db()
    assert network.segment_type == SegmentType.NONE
    assert not Address.objects.filter(kind=Address.Kind.RESERVED).exists()


def test_the_network_xml_of_a_spanning_host_routes_dhcp_clients_to_the_gateway():
    xml = lx.network_xml(
        NetworkSpec(
            name="n1",
            forward=ForwardMode.OPEN,
            bridge="ccbr1",
            cidr="10.231.1.0/24",
            gateway="10.231.1.254",
            dhcp_router="10.231.1.1",
        )
    )
    root = lx.parse(xml)
    assert root.find("forward").get("mode") == "open"
    assert root.find("ip").get("address") == "10.231.1.254" and root.find("ip/dhcp/range") is None
    option = root.find("{http://libvirt.org/schemas/network/dnsmasq/1.0}options/")
    assert option.get("value") == "dhcp-option=3,10.231.1.1"


# --- who is told to sync ---------------------------------------------------------------------------------


def test_a_host_joining_a_network_makes_every_holder_sync_and_a_second_desktop_only_its_own(
    scenario, sent, django_capture_on_commit_callbacks
):
    h1, h2 = _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2", "10.0.1.2")
    network = tenant_network(scenario)
    with django_capture_on_commit_callbacks(execute=True):
        networking.network_ensure_on(network=network, endpoint=h1.endpoint, driver=driver_for(h1.endpoint))
    assert sent == [(overlay.SYNC_TASK, ["h1"], "host.h1")]
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        networking.network_ensure_on(network=network, endpoint=h2.endpoint, driver=driver_for(h2.endpoint))
    assert sorted(q for _t, _a, q in sent) == ["host.h1", "host.h2"]
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        networking.network_ensure_on(network=network, endpoint=h2.endpoint, driver=driver_for(h2.endpoint))
    assert [q for _t, _a, q in sent] == ["host.h2"]


def test_a_network_leaving_a_host_frees_its_dhcp_address_and_its_peers_sync(
    scenario, sent, django_capture_on_commit_callbacks
):
    h1, h2 = _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2", "10.0.1.2")
    network = tenant_network(scenario)
    for host in (h1, h2):
        networking.network_ensure_on(network=network, endpoint=host.endpoint, driver=driver_for(host.endpoint))
    sent.clear()
    # h2's libvirt network is gone and no desktop there needs it: the DHCP sync forgets it.
    driver_for(h2.endpoint).network_delete(networking.libvirt_network_name(network, h2.endpoint))
    with django_capture_on_commit_callbacks(execute=True):
        networking.dhcp_sync()
    assert set(NetworkDeployment.objects.values_list("endpoint", flat=True)) == {"h1"}
    assert list(Address.objects.filter(kind=Address.Kind.RESERVED).values_list("hostname", flat=True)) == ["dhcp-h1"]
    assert sorted(q for _t, _a, q in sent) == ["host.h1", "host.h2"]


def test_a_removed_host_leaves_its_networks_and_its_peers_drop_it(scenario, sent, django_capture_on_commit_callbacks):
    h1, h2 = _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2", "10.0.1.2")
    network = tenant_network(scenario)
    for host in (h1, h2):
        networking.network_ensure_on(network=network, endpoint=host.endpoint, driver=driver_for(host.endpoint))
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.host_remove(actor=scenario.sysadmin, name="h2")
    assert set(NetworkDeployment.objects.values_list("endpoint", flat=True)) == {"h1"}
    assert list(Address.objects.filter(kind=Address.Kind.RESERVED).values_list("hostname", flat=True)) == ["dhcp-h1"]
    assert [q for _t, _a, q in sent] == ["host.h1"]
    assert overlay.host_layout(Host.objects.get(name="h1"))[0].peers == ()


def test_the_periodic_repair_sends_a_sync_to_every_host_with_a_data_address(scenario, sent):
    _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2"), _host(scenario, "h3", "10.0.1.3")
    assert overlay.hosts_network_sync_send() == ["h1", "h3"]
    assert [q for _t, _a, q in sent] == ["host.h1", "host.h3"]


# --- the data address ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["10.0.1", "fe80::1", "h1.campus", "10.0.1.1/24"])
def test_a_data_address_must_be_an_ipv4_address(scenario, value):
    with pytest.raises(InvalidInput) as excinfo:
        _host(scenario, "h1", value)
    assert excinfo.value.code == ComputeError.HOST_DATA_ADDRESS_INVALID
    assert not Host.objects.filter(name="h1").exists()


def test_two_hosts_cannot_claim_one_data_address(scenario):
    _host(scenario, "h1", "10.0.1.1")
    with pytest.raises(Conflict) as excinfo:
        _host(scenario, "h2", "10.0.1.1")
    assert excinfo.value.code == ComputeError.HOST_DATA_ADDRESS_TAKEN and excinfo.value.detail["host"] == "h1"
    h2 = _host(scenario, "h2")
    with pytest.raises(Conflict):
        services.host_data_address_set(actor=scenario.sysadmin, name="h2", data_address="10.0.1.1")
    h2.refresh_from_db()
    assert h2.data_address is None


def test_a_host_holding_networks_cannot_switch_between_the_single_host_and_the_spanning_model(scenario):
    local = _host(scenario, "h1")
    network = tenant_network(scenario)
    networking.network_ensure_on(network=network, endpoint=local.endpoint, driver=driver_for(local.endpoint))
    with pytest.raises(Conflict) as excinfo:
        services.host_data_address_set(actor=scenario.sysadmin, name="h1", data_address="10.0.1.1")
    assert excinfo.value.code == ComputeError.HOST_DATA_ADDRESS_LOCKED and excinfo.value.detail["networks"] == 1
    local.refresh_from_db()
    assert local.data_address is None
    spanning = _host(scenario, "h2", "10.0.1.2")
    networking.network_ensure_on(network=network, endpoint=spanning.endpoint, driver=driver_for(spanning.endpoint))
    with pytest.raises(Conflict):
        services.host_data_address_set(actor=scenario.sysadmin, name="h2", data_address="")


def test_host_add_takes_the_data_address_and_the_host_page_changes_it(
    scenario, settings, sent, django_capture_on_commit_callbacks
):
    from django.core.management import call_command

    call_command(
        "host_add",
        *("--name", "h1", "--uri", "test:///default", "--site", "east", "--cluster", "c"),
        *("--address", "10.9.0.1", "--data-address", "10.0.1.1", "--json"),
        stdout=open("/dev/null", "w"),  # noqa: SIM115 - the JSON is the other tests' concern
    )
    host = Host.objects.get(name="h1")
    assert host.data_address == "10.0.1.1"
    network = tenant_network(scenario)
    networking.network_ensure_on(network=network, endpoint=host.endpoint, driver=driver_for(host.endpoint))
    sent.clear()

    settings.SECOND_FACTOR_REQUIRED = False
    client = Client()
    client.force_login(scenario.sysadmin)
    page = client.get(f"/compute/admin/hosts/{host.pk}/").content.decode()
    assert 'data-testid="host-data-address"' in page and 'value="10.0.1.1"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/compute/admin/hosts/{host.pk}/data-address/", {"data_address": "10.0.1.9"})
    assert response.status_code == 302
    host.refresh_from_db()
    assert host.data_address == "10.0.1.9"
    assert [q for _t, _a, q in sent] == ["host.h1"]
    event = AuditEvent.objects.get(action="host.data_address_set")
    assert event.detail == {"from": "10.0.1.1", "to": "10.0.1.9"}
    # A bad one is refused with the reason, and nothing changes.
    response = client.post(f"/compute/admin/hosts/{host.pk}/data-address/", {"data_address": "x"}, follow=True)
    assert "数据地址须为 IPv4 地址" in response.content.decode()
    host.refresh_from_db()
    assert host.data_address == "10.0.1.9"
    # Nobody but a system admin reaches the form.
    client.force_login(scenario.teacher)
    assert client.post(f"/compute/admin/hosts/{host.pk}/data-address/", {"data_address": ""}).status_code == 404


# --- the agent's sync, against a model of the kernel -----------------------------------------------------------


class Kernel:
    """Just enough of ``ip -j`` and ``bridge -j`` for HostNet: links (with vxlan info), addresses, fdb."""

    def __init__(self):
        self.links = {
            "data0": {"ifname": "data0", "flags": ["UP"], "addr_info": [{"local": "10.0.1.1"}]},
            "ccbr7": {"ifname": "ccbr7", "flags": ["UP"], "addr_info": []},
        }
        self.fdb: dict[str, set[str]] = {}
        self.chains: dict[str, list[str]] = {"INPUT": [], "FORWARD": [], "OUTPUT": []}
        self.commands: list[str] = []

    def __call__(self, argv):
        self.commands.append(" ".join(argv))
        if argv[:3] == ["ip", "-j", "addr"]:
            return json.dumps(list(self.links.values()))
        if argv[:4] == ["ip", "-j", "-d", "link"]:
            if "dev" in argv:
                return json.dumps([self.links[argv[-1]]])
            return json.dumps(list(self.links.values()))
        if argv == ["ebtables", "-L"]:
            return "".join(
                f"Bridge chain: {c}, entries: {len(r)}\n" + "".join(f"{x}\n" for x in r) + "\n"
                for c, r in self.chains.items()
            )
        if argv[0] == "ebtables":
            return self._ebtables(argv[1:])
        if argv[:3] == ["bridge", "-j", "fdb"]:
            return json.dumps([{"mac": "00:00:00:00:00:00", "dst": d} for d in sorted(self.fdb.get(argv[-1], ()))])
        return self._change(argv)

    def _ebtables(self, args):
        if args[0] in ("-N", "-F"):
            self.chains[args[1]] = []
        elif args[0] == "-A":
            self.chains[args[1]].append(" ".join(args[2:]))
        return ""

    def _change(self, argv):
        if argv[:4] == ["ip", "link", "add", "link"]:
            name, vlan = argv[6], int(argv[-1])
            info = {"info_kind": "vlan", "info_data": {"id": vlan}}
            self.links[name] = {"ifname": name, "link": argv[4], "flags": [], "linkinfo": info}
        elif argv[:3] == ["ip", "link", "add"]:
            name, vni = argv[3], int(argv[argv.index("id") + 1])
            data = {"id": vni, "local": argv[argv.index("local") + 1], "link": argv[argv.index("dev") + 1]}
            data.update(port=int(argv[argv.index("dstport") + 1]), learning="nolearning" not in argv)
            self.links[name] = {"ifname": name, "flags": [], "linkinfo": {"info_kind": "vxlan", "info_data": data}}
        elif argv[:3] == ["ip", "link", "del"]:
            self.links.pop(argv[-1])
            self.fdb.pop(argv[-1], None)
        elif argv[:3] == ["ip", "link", "set"] and argv[-2] == "master":
            self.links[argv[4]]["master"] = argv[-1]
        elif argv[:3] == ["ip", "link", "set"] and argv[-1] == "up":
            self.links[argv[4]]["flags"].append("UP")
        elif argv[:3] == ["bridge", "fdb", "append"]:
            self.fdb.setdefault(argv[5], set()).add(argv[-1])
        elif argv[:3] == ["bridge", "fdb", "del"]:
            self.fdb[argv[5]].discard(argv[-1])
        return ""


def _changes(kernel):
    return [c for c in kernel.commands if " -j " not in c and c != "ebtables -L"]


def test_the_overlay_is_made_once_then_repaired_and_a_second_run_changes_nothing():
    kernel = Kernel()
    net = HostNet(runner=kernel)
    spec = OverlaySpec(bridge="ccbr7", device="ccvx5001", vni=5001, local="10.0.1.1", peers=("10.0.1.3", "10.0.1.2"))

    net.overlay_apply(spec)
    assert _changes(kernel) == [
        "ip link add ccvx5001 type vxlan id 5001 local 10.0.1.1 dev data0 dstport 4789 nolearning",
        "ip link set dev ccvx5001 master ccbr7",
        "ip link set dev ccvx5001 up",
        "bridge fdb append 00:00:00:00:00:00 dev ccvx5001 dst 10.0.1.2",
        "bridge fdb append 00:00:00:00:00:00 dev ccvx5001 dst 10.0.1.3",
    ]
    kernel.commands.clear()
    assert net.overlay_apply(spec) == [] and _changes(kernel) == []

    # Drift: a peer left the network, a stranger's entry appeared, the device fell out of the bridge.
    kernel.fdb["ccvx5001"].add("10.0.1.66")
    del kernel.links["ccvx5001"]["master"]
    changes = net.overlay_apply(OverlaySpec(**{**spec.__dict__, "peers": ("10.0.1.2",)}))
    assert changes == [
        "ccvx5001: into ccbr7",
        "ccvx5001: peer 10.0.1.3 removed",
        "ccvx5001: peer 10.0.1.66 removed",
    ]
    assert kernel.fdb["ccvx5001"] == {"10.0.1.2"}


def test_a_device_with_other_settings_is_made_again_and_devices_of_gone_networks_are_removed():
    kernel = Kernel()
    net = HostNet(runner=kernel)
    net.overlay_apply(OverlaySpec(bridge="ccbr7", device="ccvx9", vni=8, local="10.0.1.1"))
    net.overlay_apply(OverlaySpec(bridge="ccbr7", device="ccvx9", vni=9, local="10.0.1.1"))
    assert kernel.links["ccvx9"]["linkinfo"]["info_data"]["id"] == 9
    assert "ip link del dev ccvx9" in kernel.commands
    net.overlay_apply(OverlaySpec(bridge="ccbr7", device="ccvx10", vni=10, local="10.0.1.1"))
    assert net.devices_prune(("ccvx", "ccvl"), keep={"ccvx10"}) == ["ccvx9"]
    assert set(kernel.links) == {"data0", "ccbr7", "ccvx10"}


def test_a_missing_bridge_or_data_address_is_a_clear_error_and_nothing_is_made():
    kernel = Kernel()
    net = HostNet(runner=kernel)
    with pytest.raises(DriverError) as excinfo:
        net.overlay_apply(OverlaySpec(bridge="ccbr8", device="ccvx9", vni=9, local="10.0.1.1"))
    assert excinfo.value.code == ErrorCode.NOT_FOUND and "ccbr8" in excinfo.value.message
    with pytest.raises(DriverError) as excinfo:
        net.overlay_apply(OverlaySpec(bridge="ccbr7", device="ccvx9", vni=9, local="10.0.9.9"))
    assert excinfo.value.code == ErrorCode.NOT_FOUND
    assert _changes(kernel) == []


def test_the_agents_sync_applies_the_hosts_layout_and_reports_errors_per_network(scenario, monkeypatch):
    h1, _h2 = _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2", "10.0.1.2")
    network = tenant_network(scenario)
    other = tenant_network(scenario, name="other", cidr="10.231.2.0/24")
    for each in (network, other):
        network_services.network_vni_ensure(network_id=each.pk)
        for name in ("h1", "h2"):
            NetworkDeployment.objects.create(network=each, endpoint=name)
    network.refresh_from_db()
    kernel = Kernel()
    bridge = networking.bridge_name(network, h1.endpoint)
    kernel.links[bridge] = {"ifname": bridge, "flags": ["UP"], "addr_info": []}
    kernel.links["ccvx4242"] = {"ifname": "ccvx4242", "flags": ["UP"]}  # a network h1 no longer holds

    report = overlay.host_network_sync(host_name="h1", hostnet=HostNet(runner=kernel))

    assert kernel.fdb[f"ccvx{network.segment_id}"] == {"10.0.1.2"}
    assert report["removed"] == ["ccvx4242"]
    # DHCP stays on its host: no DHCP frame crosses a tunnel port, in, through or out; set up once.
    assert kernel.chains["CC-SPAN-DHCP"] == ["-p IPv4 --ip-proto udp --ip-dport 67:68 -j DROP"]
    assert kernel.chains["FORWARD"] == ["-i ccvx+ -j CC-SPAN-DHCP", "-o ccvx+ -j CC-SPAN-DHCP"]
    assert kernel.chains["INPUT"] == ["-i ccvx+ -j CC-SPAN-DHCP"] and kernel.chains["OUTPUT"] == [
        "-o ccvx+ -j CC-SPAN-DHCP"
    ]
    again = overlay.host_network_sync(host_name="h1", hostnet=HostNet(runner=kernel))
    assert not [c for c in again["changes"] if "DHCP" in c] and len(kernel.chains["FORWARD"]) == 2
    # The other network's bridge is not up on h1 (its libvirt network is not started): said, not hidden.
    assert len(report["errors"]) == 1 and networking.bridge_name(other, h1.endpoint) in report["errors"][0]


def test_a_flat_network_on_a_provider_vlan_puts_the_vlan_of_the_data_interface_in_its_bridge(scenario, sent):
    h1, _h2 = _host(scenario, "h1", "10.0.1.1"), _host(scenario, "h2", "10.0.1.2")
    flat = network_services.network_create(
        actor=scenario.sysadmin,
        tenant=None,
        name="campus",
        kind=Network.Kind.FLAT,
        cidr="",
        segment_type="vlan",
        segment_id=120,
    )
    spec = overlay.span_spec(flat, h1.endpoint)
    assert (spec.forward, spec.bridge, spec.cidr) == (ForwardMode.NONE, networking.bridge_name(flat, h1.endpoint), "")
    for name in ("h1", "h2"):
        NetworkDeployment.objects.create(network=flat, endpoint=name)
    (vlan,) = overlay.host_layout(h1)
    assert (vlan.device, vlan.vlan, vlan.bridge) == ("ccvl120", 120, spec.bridge)

    kernel = Kernel()
    kernel.links[spec.bridge] = {"ifname": spec.bridge, "flags": ["UP"], "addr_info": []}
    report = overlay.host_network_sync(host_name="h1", hostnet=HostNet(runner=kernel))
    assert report["errors"] == [] and _changes(kernel) == [
        "ip link add link data0 name ccvl120 type vlan id 120",
        f"ip link set dev ccvl120 master {spec.bridge}",
        "ip link set dev ccvl120 up",
    ]
    kernel.commands.clear()
    assert overlay.host_network_sync(host_name="h1", hostnet=HostNet(runner=kernel))["changes"] == []
    # A flat network on a host bridge of its own stays as it is.
    own = network_services.network_create(
        actor=scenario.sysadmin, tenant=None, name="lab-bridge", kind=Network.Kind.FLAT, cidr="", bridge="br-lab"
    )
    assert overlay.span_spec(own, h1.endpoint) is None

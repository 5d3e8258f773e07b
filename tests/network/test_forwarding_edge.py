"""Elastic IPs and port forwards of desktops on registered compute nodes: asked of the network node's agent.

The portal never edits a registered host's firewall: it sends ``edge_sync`` to the network node's queue
and the rows say they wait for that agent. What the agent then builds (namespaces, iptables) is tested
on the testbed (tests/testbed/test_edge.py); here the layer above: who is asked, what the rows say,
what the node's plan is. The task's ``apply_async`` is replaced by a recorder (no broker, no agent).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from common.errors import InvalidInput
from compute import networking, services
from compute.drivers import gateway as gw
from compute.drivers.base import DriverError, ErrorCode, ForwardSpec
from compute.drivers.hostfw import HostFirewall, Rule
from compute.models import Cluster, Host
from compute.networking import gateway
from compute.tasks.edge import edge_sync
from network import services as network_services
from network.models import ElasticIP, PortForward, PublicPool
from tests.network.conftest import desktop_row, endpoint_make, tenant_network


@pytest.fixture
def sent(monkeypatch):
    """The edge_sync requests the portal sends: (host name, queue, options)."""
    calls = []

    def record(args=None, queue=None, **options):
        options.pop("task_id", None)
        options.pop("kwargs", None)
        calls.append((args[0], queue, options))

    monkeypatch.setattr(edge_sync, "apply_async", record)
    return calls


def _registered(scenario, name, address, *, node=False, cluster=None, alive=True):
    endpoint = endpoint_make(scenario, name=name)
    if cluster is not None:
        endpoint.cluster = cluster
        endpoint.save(update_fields=["cluster"])
    host, _created = Host.objects.update_or_create(
        endpoint=endpoint,
        defaults={
            "name": name,
            "address": address,
            "is_network_node": node,
            "heartbeat_at": timezone.now() if alive else timezone.now() - timedelta(hours=1),
        },
    )
    return endpoint, host


def _eip_with_forward(scenario, endpoint, *, cidr="10.231.5.0/24", pool_cidr="203.0.113.224/28"):
    network = tenant_network(scenario, cidr=cidr)
    desktop = desktop_row(scenario.tenant_a, endpoint)
    (address,) = networking.desktop_nics_allocate(desktop=desktop, network=network)
    pool = PublicPool.objects.create(name=f"p-{pool_cidr}", cidr=pool_cidr)
    eip = network_services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    eip = network_services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    forward = network_services.port_forward_create(
        actor=scenario.tenant_admin, eip=eip, address=address, public_port=2222, private_port=22
    )
    return network, address, eip, forward


def test_a_registered_hosts_forward_is_asked_of_its_network_nodes_agent_and_waits_for_it(scenario, sent):
    node_ep, node = _registered(scenario, "edge-net", "10.213.90.11", node=True)
    compute_ep, _host = _registered(scenario, "edge-a", "10.213.90.12")
    _network, _address, eip, forward = _eip_with_forward(scenario, compute_ep)

    report = networking.forwarding_apply(eip_id=eip.pk)

    assert report["added"] == [] and report["errors"] == []
    assert {w["key"] for w in report["waiting"]} == {
        networking.eip_key(eip.pk),
        networking.forward_key(eip.pk, forward.pk),
    }
    assert sent == [("edge-net", "host.edge-net", {})]
    for row in (ElasticIP.objects.get(pk=eip.pk), PortForward.objects.get(pk=forward.pk)):
        assert (row.applied, row.applied_to) == (False, "")
        assert "等待主机代理" in row.apply_note and "edge-net" in row.apply_note and "离线" not in row.apply_note

    # The node's agent is down: the rows say so; the request still goes (it waits in the queue).
    Host.objects.filter(pk=node.pk).update(heartbeat_at=None)
    networking.forwarding_apply(eip_id=eip.pk)
    assert "代理离线" in ElasticIP.objects.get(pk=eip.pk).apply_note
    assert len(sent) == 2 and sent[1][1] == node.queue == f"host.{node_ep.name}"


def test_without_a_network_node_the_row_says_how_to_name_one_and_nothing_is_sent(scenario, sent):
    compute_ep, _host = _registered(scenario, "edge-b", "10.213.90.13")
    _network, _address, eip, _forward = _eip_with_forward(scenario, compute_ep)

    report = networking.forwarding_apply(eip_id=eip.pk)

    assert len(report["errors"]) == 2 and sent == []
    eip = ElasticIP.objects.get(pk=eip.pk)
    assert not eip.applied and "没有网络节点" in eip.apply_note and "--network-node" in eip.apply_note


def test_the_network_node_of_the_cluster_wins_over_the_sites(scenario):
    site_node_ep, site_node = _registered(scenario, "edge-s", "10.213.90.14", node=True)
    other = Cluster.objects.create(site=site_node_ep.site, name="edge-gpu")
    cluster_ep, cluster_node = _registered(scenario, "edge-c", "10.213.90.15", node=True, cluster=other)
    in_cluster, _h = _registered(scenario, "edge-d", "10.213.90.16", cluster=other)
    elsewhere, _h = _registered(scenario, "edge-e", "10.213.90.17")

    assert gateway.network_node_for(in_cluster) == cluster_node
    assert gateway.network_node_for(elsewhere) == site_node
    assert set(gateway.served_endpoints(cluster_node)) == {cluster_ep.pk, in_cluster.pk}
    assert elsewhere.pk in gateway.served_endpoints(site_node)
    assert in_cluster.pk not in gateway.served_endpoints(site_node)
    # A local endpoint (no registered host) keeps the portal's own host firewall.
    local = endpoint_make(scenario, name="edge-local")
    Host.objects.filter(endpoint=local).update(address=None)
    assert not gateway.is_agent_host(local) and gateway.is_agent_host(elsewhere)


def test_a_network_prepared_on_a_registered_host_asks_only_its_node_for_the_gateway(scenario, sent):
    _registered(scenario, "edge-h", "10.213.90.61", node=True)
    other = Cluster.objects.create(site=Cluster.objects.first().site, name="edge-other")
    _registered(scenario, "edge-i", "10.213.90.62", node=True, cluster=other)
    compute_ep, _host = _registered(scenario, "edge-j", "10.213.90.63")
    local = endpoint_make(scenario, name="edge-local2")
    Host.objects.filter(endpoint=local).update(address=None)

    assert gateway.gateways_request_for(compute_ep) == ["edge-h"]
    assert gateway.gateways_request_for(local) == []
    assert sent == [("edge-h", "host.edge-h", {})]


def test_the_nodes_plan_is_a_gateway_per_router_network_with_its_forwards(scenario, sent):
    node_ep, node = _registered(scenario, "edge-n2", "10.213.90.21", node=True)
    compute_ep, _host = _registered(scenario, "edge-f", "10.213.90.22")
    network, address, eip, forward = _eip_with_forward(scenario, compute_ep, cidr="10.231.6.0/24")
    quiet = tenant_network(scenario, cidr="10.231.7.0/24", name="quiet")
    networking.desktop_nics_allocate(desktop=desktop_row(scenario.tenant_a, compute_ep), network=quiet)
    unused = tenant_network(scenario, cidr="10.231.8.0/24", name="unused")

    specs, wanted, refused = gateway.edge_plan(node)

    by_index = {s.index: s for s in specs}
    assert set(by_index) == {network.pk, quiet.pk} and unused.pk not in by_index
    spec = by_index[network.pk]
    assert spec.bridge == networking.bridge_name(network, node_ep)
    assert spec.gateway == "10.231.6.1/24" and spec.uplink_source == "10.213.90.21"
    assert {f.key for f in spec.forwards} == {networking.eip_key(eip.pk), networking.forward_key(eip.pk, forward.pk)}
    assert {f.private_ip for f in spec.forwards} == {address.ip} and refused == {}
    assert by_index[quiet.pk].forwards == () and by_index[quiet.pk].gateway == "10.231.7.1/24"
    assert len(wanted) == 2


def test_edge_sync_refuses_to_run_outside_that_hosts_agent(scenario, monkeypatch):
    _registered(scenario, "edge-n3", "10.213.90.31", node=True)
    monkeypatch.delenv(gateway.AGENT_ENV, raising=False)
    with pytest.raises(DriverError) as caught:
        gateway.edge_sync(host_name="edge-n3")
    assert caught.value.permanent and "refused" in caught.value.message
    monkeypatch.setenv(gateway.AGENT_ENV, "edge-other")
    with pytest.raises(DriverError):
        edge_sync("edge-n3")


def test_the_periodic_sync_asks_every_network_node_with_an_expiry(scenario, sent):
    _registered(scenario, "edge-n4", "10.213.90.41", node=True)
    _registered(scenario, "edge-g", "10.213.90.42")
    networking.forwarding_sync()
    assert sent == [("edge-n4", "host.edge-n4", {"expires": networking.forwarding.SYNC_REQUEST_EXPIRES})]


@pytest.mark.django_db(transaction=True)
def test_naming_a_network_node_needs_an_address_is_audited_and_asks_the_agents(scenario, sent):
    _ep, host = _registered(scenario, "edge-n5", "10.213.90.51")
    local_ep = endpoint_make(scenario, name="edge-n6")
    local, _created = Host.objects.update_or_create(endpoint=local_ep, defaults={"name": "edge-n6", "address": None})

    with pytest.raises(InvalidInput):
        services.host_network_node_set(actor=scenario.sysadmin, name="edge-n6", on=True)
    assert not Host.objects.get(pk=local.pk).is_network_node

    services.host_network_node_set(actor=scenario.sysadmin, name="edge-n5", on=True)
    assert Host.objects.get(pk=host.pk).is_network_node
    assert sent == [("edge-n5", "host.edge-n5", {})]
    event = AuditEvent.objects.filter(detail__op="network_node").latest("pk")
    assert event.detail["to"] is True and event.actor_id == scenario.sysadmin.pk
    services.host_network_node_set(actor=scenario.sysadmin, name="edge-n5", on=False)
    # Taken off: its own agent is still asked once, to remove the gateways it held.
    assert sent[-1] == ("edge-n5", "host.edge-n5", {}) and not Host.objects.get(pk=host.pk).is_network_node


def test_gateway_specs_are_checked_before_any_command_and_transfer_links_are_numbered():
    assert gw.transfer(1) == ("169.254.0.5", "169.254.0.6")
    assert gw.transfer(300) == ("169.254.4.177", "169.254.4.178")
    spec = gw.GatewaySpec(index=7, bridge="ccbr7", gateway="10.0.0.1/24", uplink_source="10.213.20.11")
    assert (spec.netns, spec.lan_link, spec.wan_link, spec.key) == ("ccgw7", "gwl7", "gwu7", "gw-7")
    for bad in (
        {"index": 0},
        {"index": 16384},
        {"bridge": "br; reboot"},
        {"gateway": "10.0.0.300/24"},
        {"uplink_source": "nowhere"},
    ):
        with pytest.raises(DriverError) as caught:
            gw.gateway_apply(gw.GatewaySpec(**{**spec.__dict__, **bad}))
        assert caught.value.code == ErrorCode.INVALID_SPEC, bad


def test_host_rules_go_only_into_our_own_chains_under_a_valid_key():
    fw = HostFirewall("T", netns="ccgw7")
    for key, rules in (
        ("Bad Key", []),
        ("gw-7", [Rule("nat", "POSTROUTING", ("-j", "MASQUERADE"))]),
    ):
        with pytest.raises(DriverError) as caught:
            fw.apply_rules(key, rules)
        assert caught.value.code == ErrorCode.INVALID_SPEC
    with pytest.raises(DriverError):
        HostFirewall("T", netns="bad ns; rm")
    spec = ForwardSpec(key="eip-1", public_ip="198.51.100.1", private_ip="10.0.0.5", bridge="lan0")
    assert [r.chain for r in fw.rules(spec)] == ["T-DNAT", "T-FWD", "T-SNAT"]


@pytest.mark.django_db(transaction=True)
def test_the_host_page_names_and_unnames_the_network_node_for_the_system_admin_only(scenario, sent, settings):
    from django.test import Client

    settings.SECOND_FACTOR_REQUIRED = False
    _ep, host = _registered(scenario, "edge-n7", "10.213.90.71")
    admin, stranger = Client(), Client()
    admin.force_login(scenario.sysadmin)
    stranger.force_login(scenario.tenant_admin)
    url = f"/compute/admin/hosts/{host.pk}/network-node/"

    assert stranger.post(url, {"on": "1"}).status_code == 404
    assert not Host.objects.get(pk=host.pk).is_network_node
    page = admin.get(f"/compute/admin/hosts/{host.pk}/").content.decode()
    assert 'data-testid="network-node-form"' in page and 'data-testid="network-node"' not in page

    answer = admin.post(url, {"on": "1"})
    assert answer.status_code == 302 and Host.objects.get(pk=host.pk).is_network_node
    assert 'data-testid="network-node"' in admin.get("/compute/admin/hosts/").content.decode()
    assert sent == [("edge-n7", "host.edge-n7", {})]
    admin.post(url, {"on": "0"})
    assert not Host.objects.get(pk=host.pk).is_network_node


def test_a_network_node_with_a_data_address_holds_the_bridge_of_every_network_it_is_the_gateway_of(
    scenario, sent, monkeypatch
):
    """The desktops may all be on other hosts: the node's agent defines the network on its own libvirtd
    (its bridge joins the VXLAN) before it builds the gateway's leg in that bridge."""
    from compute.networking import bindings

    node_ep, node = _registered(scenario, "edge-n5", "10.213.90.51", node=True)
    compute_ep, _host = _registered(scenario, "edge-g", "10.213.90.52")
    network, *_rest = _eip_with_forward(scenario, compute_ep, cidr="10.231.9.0/24", pool_cidr="203.0.113.208/28")
    ensured, applied = [], []

    def ensure(*, network, endpoint):
        ensured.append((network.pk, endpoint.name))

    monkeypatch.setattr(bindings, "network_ensure_on", ensure)
    monkeypatch.setattr(gw, "gateway_apply", lambda spec: applied.append((spec.index, spec.bridge)) or "added")
    monkeypatch.setattr(gw, "namespaces", lambda: set())
    monkeypatch.setenv(gateway.AGENT_ENV, "edge-n5")

    gateway.edge_sync(host_name="edge-n5")
    assert ensured == [] and applied == [(network.pk, networking.bridge_name(network, node_ep))]

    Host.objects.filter(pk=node.pk).update(data_address="10.213.91.51")
    Host.objects.filter(endpoint=compute_ep).update(data_address="10.213.91.52")
    report = gateway.edge_sync(host_name="edge-n5")
    assert ensured == [(network.pk, "edge-n5")]
    assert report["errors"] == []


def test_preparing_a_desktops_network_on_a_registered_host_asks_its_node_for_the_gateway_after_commit(
    scenario, sent, django_capture_on_commit_callbacks
):
    from compute.hypervisor import driver_for

    _registered(scenario, "edge-n6", "10.213.90.61", node=True)
    compute_ep, _host = _registered(scenario, "edge-k", "10.213.90.62")
    network = tenant_network(scenario, cidr="10.231.10.0/24", name="prep")
    desktop = desktop_row(scenario.tenant_a, compute_ep)
    networking.desktop_nics_allocate(desktop=desktop, network=network)
    with django_capture_on_commit_callbacks(execute=True):
        networking.desktop_network_prepare(desktop=desktop, driver=driver_for(compute_ep))
    assert ("edge-n6", "host.edge-n6", {}) in sent

"""What compute pushes: network specs, nwfilter specs from security groups, NIC names per hypervisor."""

from compute import networking
from compute.models import Endpoint
from network import services
from network.models import Address, Network
from tests.network.conftest import tenant_network


def _endpoint(kind="libvirt", url="qemu:///system", **options):
    return Endpoint(pk=7, name="e7", kind=kind, url=url, options=options)


def test_a_router_network_is_a_nat_network_with_its_dhcp_range(scenario):
    network = tenant_network(scenario, cidr="10.231.1.0/24", dhcp_start="10.231.1.50", dhcp_end="10.231.1.99")
    spec = networking.network_spec(network, _endpoint())
    assert (spec.name, spec.forward, spec.bridge) == (f"ccnet-{network.pk}", "nat", f"ccbr{network.pk}")
    assert (spec.cidr, spec.gateway, spec.dhcp_start, spec.dhcp_end) == (
        "10.231.1.0/24",
        "10.231.1.1",
        "10.231.1.50",
        "10.231.1.99",
    )


def test_a_flat_network_bridges_to_the_host_and_on_vcenter_picks_a_port_group(scenario):
    flat = services.network_create(
        actor=scenario.sysadmin,
        tenant=None,
        name="campus",
        kind=Network.Kind.FLAT,
        bridge="br0",
        cidr="10.231.2.0/24",
        segment_type="vlan",
        segment_id=120,
    )
    spec = networking.network_spec(flat, _endpoint())
    assert (spec.forward, spec.bridge, spec.cidr) == ("bridge", "br0", "")
    vcenter = _endpoint(kind="vcenter", url="https://vc", vlan_portgroups={"120": "PG-VLAN120"})
    assert networking.nic_network_name(flat, vcenter) == "PG-VLAN120"
    flat.portgroup = "Lab-PG"
    assert networking.nic_network_name(flat, vcenter) == "Lab-PG"


def test_the_default_group_drops_other_tenants_subnets_before_allowing_the_campus(scenario, settings):
    settings.NETWORK_CAMPUS_CIDRS = ["10.0.0.0/8"]
    tenant_network(scenario, cidr="10.231.1.0/24")
    tenant_network(scenario, cidr="10.231.9.0/24", name="theirs", tenant=scenario.tenant_b)
    group = services.security_group_default_ensure(tenant=scenario.tenant_a)
    rules = networking.group_rules(group)
    drop = [r for r in rules if r.action == "drop"]
    accept = [r for r in rules if r.action == "accept"]
    assert [(r.direction, r.remote_cidr) for r in drop] == [("in", "10.231.9.0/24")]
    assert max(r.priority for r in drop) < min(r.priority for r in accept)
    assert {(r.protocol, r.port_min, r.remote_cidr) for r in accept if r.direction == "in"} == {
        ("tcp", 3389, "10.0.0.0/8"),
        ("tcp", 22, "10.0.0.0/8"),
        ("icmp", None, "10.0.0.0/8"),
    }
    assert [(r.direction, r.protocol, r.remote_cidr) for r in accept if r.direction == "out"] == [("out", "all", "")]


def test_a_remote_group_becomes_the_addresses_of_its_members(scenario):
    network = tenant_network(scenario)
    web = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="web")
    db = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="db")
    services.rule_add(
        actor=scenario.tenant_admin, group=db, direction="in", protocol="tcp", port_min=5432, remote_group=web
    )
    members = [
        services.address_allocate(tenant=scenario.tenant_a, desktop_id=i, network=network, security_group=web)
        for i in (1, 2)
    ]
    nic = services.address_allocate(tenant=scenario.tenant_a, desktop_id=3, network=network, security_group=db)
    spec = networking.nwfilter_spec(nic, _endpoint(filter_prefix="t-"))
    assert spec.name == f"t-{nic.pk}" and spec.default_drop
    assert sorted(r.remote_cidr for r in spec.rules) == sorted(f"{m.ip}/32" for m in members)
    # A NIC's filter keeps its UUID when its group changes, and differs between endpoints.
    nic.security_group = web
    assert networking.nwfilter_spec(nic, _endpoint(filter_prefix="t-")).uuid == spec.uuid
    other = Endpoint(pk=8, name="e8", kind="libvirt", url="qemu:///system", options={"filter_prefix": "t-"})
    assert networking.nwfilter_spec(nic, other).uuid != spec.uuid


def test_on_vcenter_the_hypervisor_picks_the_mac_and_the_database_takes_it(scenario):
    from compute.drivers.base import NicInfo
    from compute.models import Cluster, Site
    from network.models import Address
    from tests.network.conftest import desktop_row

    tenant_network(scenario)
    site = Site.objects.create(slug="vc", name="vc")
    cluster = Cluster.objects.create(site=site, name="vc-general")
    endpoint = Endpoint.objects.create(
        name="vc", site=site, cluster=cluster, kind="vcenter", url="https://vc.example", options={}
    )
    desktop = desktop_row(scenario.tenant_a, endpoint)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    (nic,) = networking.nic_specs(desktop)
    assert (nic.mac, nic.network, nic.nwfilter) == ("", "VM Network", "")
    observed = (NicInfo(mac="00:50:56:AA:BB:CC", network="VM Network"),)
    networking.desktop_nics_observed(desktop=desktop, nics=observed, requested=(nic,))
    assert Address.objects.get(pk=address.pk).mac == "00:50:56:aa:bb:cc"


def test_a_vm_that_kept_the_macs_it_was_given_costs_no_query(scenario, django_assert_num_queries):
    """libvirt takes the MACs the portal allocates: after the VM is made nothing is read again."""
    from compute.drivers.base import NicInfo, NicSpec

    asked = (NicSpec(network="cc-net-1", mac="52:54:00:0a:0b:0c"),)
    with django_assert_num_queries(0):
        networking.desktop_nics_observed(
            desktop=None, nics=(NicInfo(mac="52:54:00:0A:0B:0C", network="cc-net-1"),), requested=asked
        )


def test_every_nic_filter_references_the_anti_spoofing_filter_group_or_not(scenario):
    """A NIC without a security group still gets a filter: clean-traffic, nothing dropped beside it."""
    from types import SimpleNamespace

    from compute.drivers.xml import nwfilter_xml

    network = tenant_network(scenario, cidr="10.231.95.0/24")
    nic = services.address_allocate(tenant=scenario.tenant_a, desktop_id=95, network=network)
    endpoint = _endpoint()
    grouped = nwfilter_xml(networking.nwfilter_spec(nic, endpoint))
    assert '<filterref filter="clean-traffic" />' in grouped and 'action="drop"' in grouped
    Address.objects.filter(pk=nic.pk).update(security_group=None)
    nic = Address.objects.select_related("subnet__network").get(pk=nic.pk)
    bare = nwfilter_xml(networking.nwfilter_spec(nic, endpoint))
    assert '<filterref filter="clean-traffic" />' in bare and 'action="drop"' not in bare
    (spec,) = networking.nic_specs(SimpleNamespace(endpoint=endpoint), [nic])
    assert spec.nwfilter == networking.filter_name(nic, endpoint) and spec.filter_params == {"IP": nic.ip}

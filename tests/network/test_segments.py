"""#14.1: physical segments and address pools belong to the platform. The system admin creates them
and assigns them to tenants (inherited down the tree); a tenant admin picks only from what was
assigned, never a host bridge, port group, VLAN id or address range of its own choosing; pools of
two tenants never overlap; a tenant's subnet never changes another tenant's security-group rules."""

import pytest

from common.errors import Conflict, InvalidInput, NotFound
from compute.networking import group_rules
from network import services
from network.errors import NetworkError
from network.models import AddressPool, Network, Segment, Subnet
from tests import factories
from tests.network.conftest import tenant_network, tenant_pool


def _code(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["code"] == code, response.json()
    return response.json()


def _segment(scenario, *, kind, tenant=None, **fields):
    segment = services.segment_create(
        actor=scenario.sysadmin, name=f"seg-{Segment.objects.count() + 1}", kind=kind, **fields
    )
    if tenant is not None:
        services.segment_assign(actor=scenario.sysadmin, segment=segment, tenant=tenant)
    return segment


# --- the attacks of the issue, through the API ---------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "flat", "bridge": "ccbr7"}, "bridge"),  # another tenant's router-network bridge
        ({"kind": "flat", "portgroup": "DC0_DVPG0"}, "portgroup"),
        ({"kind": "flat", "segment_type": "vlan", "segment_id": 123}, "segment_type"),
        ({"kind": "router", "segment_type": "vxlan"}, "segment_type"),
    ],
)
def test_a_tenant_admin_cannot_take_a_bridge_port_group_or_vlan_the_platform_did_not_assign(
    scenario, api, payload, field
):
    tenant_pool(scenario)
    client = api.as_user(scenario.tenant_admin)
    body = _code(
        client.post("/api/v1/networks/", {"name": "grab", "cidr": "10.231.70.0/24", **payload}, format="json"),
        400,
        NetworkError.SEGMENT_REQUIRED,
    )
    assert body["detail"]["field"] == field
    assert not Network.objects.filter(name="grab").exists()


def test_a_tenant_admin_cannot_claim_a_router_network_as_wide_as_10_0_0_0_8(scenario, api):
    client = api.as_user(scenario.stranger_admin)
    body = _code(
        client.post("/api/v1/networks/", {"name": "wide", "cidr": "10.0.0.0/8"}, format="json"),
        400,
        NetworkError.CIDR_OUTSIDE_POOLS,
    )
    assert body["detail"]["field"] == "cidr"
    assert not Subnet.objects.exists()


def test_a_tenant_subnet_stays_inside_its_pools_and_under_the_pools_largest_size(scenario, api):
    tenant_pool(scenario, cidr="10.231.0.0/16", min_prefixlen=22)
    client = api.as_user(scenario.tenant_admin)
    _code(
        client.post("/api/v1/networks/", {"name": "big", "cidr": "10.231.0.0/21"}, format="json"),
        400,
        NetworkError.CIDR_TOO_LARGE,
    )
    _code(
        client.post("/api/v1/networks/", {"name": "out", "cidr": "10.232.0.0/24"}, format="json"),
        400,
        NetworkError.CIDR_OUTSIDE_POOLS,
    )
    created = client.post("/api/v1/networks/", {"name": "lab", "cidr": "10.231.4.0/22"}, format="json")
    assert created.status_code == 201, created.content
    (subnet,) = created.json()["subnets"]
    assert subnet["pool"] == AddressPool.objects.get().pk
    # A second subnet of the network obeys the same rules.
    url = f"/api/v1/networks/{created.json()['id']}/subnets/"
    _code(client.post(url, {"cidr": "172.16.0.0/24"}, format="json"), 400, NetworkError.CIDR_OUTSIDE_POOLS)
    assert client.post(url, {"cidr": "10.231.8.0/24"}, format="json").status_code == 201


def test_nobody_puts_a_tenant_subnet_into_another_tenants_pool(scenario):
    tenant_pool(scenario, cidr="10.231.0.0/16")
    with pytest.raises(Conflict) as refused:
        tenant_network(scenario, tenant=scenario.tenant_b, cidr="10.231.9.0/24")
    assert refused.value.code == NetworkError.CIDR_OUTSIDE_POOLS
    # Straddling the pool's edge is the same.
    with pytest.raises(Conflict):
        tenant_network(scenario, tenant=scenario.tenant_b, cidr="10.230.0.0/15")


def test_pools_never_overlap_and_a_pool_with_another_tenants_subnet_is_not_reassigned(scenario):
    pool = tenant_pool(scenario, cidr="10.231.0.0/16")
    with pytest.raises(Conflict) as refused:
        services.address_pool_create(actor=scenario.sysadmin, name="other", cidr="10.231.128.0/17")
    assert refused.value.code == NetworkError.ADDRESS_POOL_OVERLAP
    tenant_network(scenario, cidr="10.231.1.0/24")
    with pytest.raises(Conflict) as refused:
        services.address_pool_assign(actor=scenario.sysadmin, pool=pool, tenant=scenario.tenant_b)
    assert refused.value.code == NetworkError.ADDRESS_POOL_USED
    with pytest.raises(Conflict):
        services.address_pool_delete(actor=scenario.sysadmin, pool=pool)


def test_a_pool_assigned_above_is_inherited_and_two_tenants_of_it_never_overlap(scenario):
    child = factories.TenantFactory(slug="cs-ai", parent=scenario.tenant_a)
    tenant_pool(scenario, cidr="10.231.0.0/16", tenant=scenario.university)
    tenant_network(scenario, cidr="10.231.1.0/24")
    with pytest.raises(Conflict) as refused:
        tenant_network(scenario, tenant=child, cidr="10.231.1.128/25", name="ai")
    assert refused.value.code == NetworkError.CIDR_OVERLAP
    network = tenant_network(scenario, tenant=child, cidr="10.231.2.0/24", name="ai")
    assert network.subnets.get().pool.tenant == scenario.university


def test_a_tenant_admin_puts_networks_only_on_segments_assigned_to_its_tenant_or_above(scenario, api):
    tenant_pool(scenario)
    bridge = _segment(scenario, kind="bridge", bridge="br-lab", tenant=scenario.university)
    theirs = _segment(scenario, kind="portgroup", portgroup="ME Lab", tenant=scenario.tenant_b)
    vlans = _segment(scenario, kind="vlan", first=200, last=201, tenant=scenario.tenant_a)
    client = api.as_user(scenario.tenant_admin)
    listed = {s["id"] for s in client.get("/api/v1/segments/").json()["results"]}
    assert listed == {bridge.pk, vlans.pk}

    post = lambda body: client.post("/api/v1/networks/", {"cidr": "10.231.80.0/24", **body}, format="json")  # noqa: E731
    body = _code(
        post({"name": "x", "kind": "flat", "platform_segment": theirs.pk}), 404, NetworkError.SEGMENT_NOT_FOUND
    )
    assert body["detail"]["field"] == "platform_segment"
    flat = post({"name": "flat", "kind": "flat", "platform_segment": bridge.pk})
    assert flat.status_code == 201, flat.content
    assert (flat.json()["bridge"], flat.json()["platform_segment"]) == ("br-lab", bridge.pk)

    # VLAN ids come from the assigned range only: picked, or named inside it.
    first = post({"name": "v1", "cidr": "10.231.81.0/24", "segment_type": "vlan"})
    assert first.status_code == 201 and first.json()["segment_id"] == 200
    assert first.json()["platform_segment"] == vlans.pk
    _code(
        post({"name": "v9", "cidr": "10.231.82.0/24", "segment_type": "vlan", "segment_id": 999}),
        400,
        NetworkError.SEGMENT_OUT_OF_RANGE,
    )
    second = post({"name": "v2", "cidr": "10.231.83.0/24", "platform_segment": vlans.pk})
    assert second.status_code == 201 and second.json()["segment_id"] == 201
    _code(post({"name": "v3", "cidr": "10.231.84.0/24", "segment_type": "vlan"}), 409, NetworkError.SEGMENT_EXHAUSTED)
    # A bridge segment carries no VLAN; a router network cannot sit on a bridge.
    _code(
        post({"name": "r", "cidr": "10.231.85.0/24", "platform_segment": bridge.pk}), 400, NetworkError.SEGMENT_MISMATCH
    )


def test_a_segment_in_use_is_neither_taken_back_nor_deleted(scenario):
    tenant_pool(scenario)
    segment = _segment(scenario, kind="bridge", bridge="br-lab", tenant=scenario.tenant_a)
    services.network_create(
        actor=scenario.tenant_admin,
        tenant=scenario.tenant_a,
        name="f",
        kind="flat",
        platform_segment=segment,
        cidr="10.231.90.0/24",
    )
    with pytest.raises(Conflict) as refused:
        services.segment_assign(actor=scenario.sysadmin, segment=segment, tenant=scenario.tenant_a, assigned=False)
    assert refused.value.code == NetworkError.SEGMENT_USED
    with pytest.raises(Conflict):
        services.segment_delete(actor=scenario.sysadmin, segment=segment)


def test_segments_are_checked_and_never_overlap(scenario):
    _segment(scenario, kind="vlan", first=100, last=199)
    with pytest.raises(Conflict) as refused:
        _segment(scenario, kind="vlan", first=150, last=250)
    assert refused.value.code == NetworkError.SEGMENT_OVERLAP
    _segment(scenario, kind="vlan", first=100, last=199, site="campus-b")  # another site's ids are its own
    _segment(scenario, kind="bridge", bridge="br0")
    with pytest.raises(Conflict):
        _segment(scenario, kind="bridge", bridge="br0")
    for fields, code in [
        ({"kind": "vlan", "first": 0, "last": 5000}, NetworkError.SEGMENT_RANGE_INVALID),
        ({"kind": "bridge", "bridge": "br0;reboot"}, NetworkError.BRIDGE_INVALID),
        ({"kind": "portgroup", "portgroup": ""}, NetworkError.PORTGROUP_INVALID),
        ({"kind": "tunnel"}, NetworkError.SEGMENT_KIND_INVALID),
    ]:
        with pytest.raises(InvalidInput) as refused:
            _segment(scenario, **fields)
        assert refused.value.code == code


def test_only_the_system_admin_creates_and_assigns_segments_and_pools(scenario, api):
    client = api.as_user(scenario.tenant_admin)
    assert client.post("/api/v1/segments/", {"name": "s", "kind": "bridge", "bridge": "br9"}).status_code == 403
    assert client.post("/api/v1/address-pools/", {"name": "p", "cidr": "10.9.0.0/16"}).status_code == 403
    admin = api.as_user(scenario.sysadmin)
    segment = admin.post("/api/v1/segments/", {"name": "s", "kind": "vlan", "first": 10, "last": 19}, format="json")
    assert segment.status_code == 201, segment.content
    assigned = admin.post(f"/api/v1/segments/{segment.json()['id']}/assign/", {"tenant": "cs"}, format="json")
    assert assigned.status_code == 200 and assigned.json()["tenants"] == ["cs"]
    pool = admin.post(
        "/api/v1/address-pools/",
        {"name": "p", "cidr": "10.9.0.0/16", "min_prefixlen": 20, "tenant": "cs"},
        format="json",
    )
    assert pool.status_code == 201 and pool.json()["tenant"] == "cs", pool.content
    bad = admin.post(
        "/api/v1/address-pools/", {"name": "q", "cidr": "10.10.0.0/16", "min_prefixlen": 12}, format="json"
    )
    assert _code(bad, 400, NetworkError.ADDRESS_POOL_INVALID)["detail"]["field"] == "min_prefixlen"
    # A student of cs sees none of it; cs's admin sees what was assigned, not to whom else.
    assert api.as_user(scenario.student).get("/api/v1/segments/").json()["results"] == []
    assert api.as_user(scenario.student).get("/api/v1/address-pools/").json()["results"] == []
    (seen,) = api.as_user(scenario.tenant_admin).get("/api/v1/segments/").json()["results"]
    assert seen["tenants"] == []
    assert api.as_user(scenario.stranger_admin).get("/api/v1/address-pools/").json()["results"] == []


# --- security groups: another tenant's subnet never rewrites this tenant's rules ------------------


def _drops(group):
    return {r.remote_cidr for r in group_rules(group) if r.action == "drop"}


def test_another_tenants_wide_subnet_never_turns_this_tenants_campus_rules_into_drops(scenario):
    tenant_network(scenario, cidr="10.231.1.0/24")
    group = services.security_group_default_ensure(tenant=scenario.tenant_a)
    # A subnet of tenant B as wide as the campus, as a tenant admin could make one before pools.
    tenant_network(scenario, tenant=scenario.tenant_b, cidr="10.0.0.0/8", name="wide")
    tenant_network(scenario, tenant=scenario.tenant_b, cidr="172.16.0.0/12", name="wide2")
    assert "10.0.0.0/8" not in _drops(group)
    accepts = [r for r in group_rules(group) if r.action == "accept" and r.remote_cidr == "10.0.0.0/8"]
    assert accepts, "the campus RDP/SSH/ICMP rules are still there"


def test_other_tenants_subnets_inside_their_pools_are_still_kept_out(scenario):
    tenant_pool(scenario, cidr="10.231.0.0/16")
    tenant_pool(scenario, cidr="10.232.0.0/16", tenant=scenario.tenant_b)
    tenant_network(scenario, cidr="10.231.1.0/24")
    tenant_network(scenario, tenant=scenario.tenant_b, cidr="10.232.1.0/24", name="b")
    assert _drops(services.security_group_default_ensure(tenant=scenario.tenant_a)) == {"10.232.1.0/24"}
    assert _drops(services.security_group_default_ensure(tenant=scenario.tenant_b)) == {"10.231.1.0/24"}


def test_a_segment_of_another_tenant_is_not_found_by_the_service(scenario):
    theirs = _segment(scenario, kind="bridge", bridge="br-me", tenant=scenario.tenant_b)
    tenant_pool(scenario)
    with pytest.raises(NotFound) as refused:
        services.network_create(
            actor=scenario.tenant_admin,
            tenant=scenario.tenant_a,
            name="x",
            kind="flat",
            platform_segment=theirs,
            cidr="10.231.91.0/24",
        )
    assert refused.value.code == NetworkError.SEGMENT_NOT_FOUND


def test_the_platforms_own_vlan_picks_skip_the_ranges_given_to_tenants(scenario):
    services.segment_range_set(actor=scenario.sysadmin, site="main", kind="vlan", first=100, last=300)
    _segment(scenario, kind="vlan", first=100, last=199, tenant=scenario.tenant_a)
    shared = services.network_create(
        actor=scenario.sysadmin, tenant=None, name="shared", segment_type="vlan", cidr="10.97.0.0/24"
    )
    assert shared.segment_id == 200
    tenant_pool(scenario)
    mine = services.network_create(
        actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="mine", segment_type="vlan", cidr="10.231.1.0/24"
    )
    assert mine.segment_id == 100

"""The network API: networks, subnets with usage, a desktop's NICs, security groups and rules,
elastic IPs and port forwards; refusals as {"code", "message"}; constant query counts."""

import itertools

from network import selectors, services
from network.errors import NetworkError
from network.models import Address, Network, PublicPool, SecurityGroup, SecurityGroupRule
from tenants.errors import TenantsError
from tests.network.conftest import tenant_network, tenant_pool
from tests.querycount import assert_constant_queries

_n = itertools.count(1)


def test_a_tenant_admin_creates_a_network_and_sees_its_usage(scenario, api):
    tenant_pool(scenario)
    client = api.as_user(scenario.tenant_admin)
    response = client.post(
        "/api/v1/networks/",
        {"name": "lab", "cidr": "10.231.5.0/24", "dns_servers": "10.0.0.53", "dhcp_start": "10.231.5.10"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["tenant"] == "cs" and body["kind"] == "router" and not body["shared"]
    (subnet,) = body["subnets"]
    assert subnet["usage"] == {"size": 245, "used": 0, "free": 245}
    assert subnet["dns_servers"] == ["10.0.0.53"]
    # The tenant's default security group came with its first network.
    assert SecurityGroup.objects.get(tenant=scenario.tenant_a, is_default=True).rules.count() >= 3

    network = Network.objects.get(pk=body["id"])
    services.address_allocate(tenant=scenario.tenant_a, desktop_id=7, network=network)
    subnet = client.get(f"/api/v1/subnets/{subnet['id']}/").json()
    assert subnet["usage"] == {"size": 245, "used": 1, "free": 244}


def test_bad_network_input_is_a_4xx_with_a_code_and_nothing_is_created(scenario, api):
    tenant_pool(scenario)
    client = api.as_user(scenario.tenant_admin)
    tenant_network(scenario, cidr="10.231.6.0/24")
    cases = [
        ({"name": "x", "cidr": "10.231.6.128/25"}, 409, NetworkError.CIDR_OVERLAP),
        ({"name": "x", "cidr": "not-a-cidr"}, 400, NetworkError.CIDR_INVALID),
        (
            {"name": "x", "cidr": "10.231.7.0/24", "segment_type": "vlan", "segment_id": 5000},
            400,
            NetworkError.SEGMENT_REQUIRED,  # no VLAN range assigned to the tenant
        ),
        ({"name": "x", "cidr": "10.231.7.0/24", "kind": "flat"}, 400, NetworkError.SEGMENT_REQUIRED),
    ]
    for payload, status, code in cases:
        response = client.post("/api/v1/networks/", payload, format="json")
        assert response.status_code == status, (payload, response.content)
        assert response.json()["code"] == code
        assert response.json()["message"]
    assert Network.objects.count() == 1


def test_a_student_cannot_create_networks_or_rules_but_reads_them(scenario, api):
    network = tenant_network(scenario)
    group = services.security_group_default_ensure(tenant=scenario.tenant_a)
    client = api.as_user(scenario.student)
    assert client.post("/api/v1/networks/", {"name": "x", "cidr": "10.231.9.0/24"}, format="json").status_code == 403
    assert client.post(f"/api/v1/security-groups/{group.pk}/rules/", {"direction": "in"}).status_code == 403
    assert [n["id"] for n in client.get("/api/v1/networks/").json()["results"]] == [network.pk]
    assert api.as_user(scenario.stranger).get("/api/v1/networks/").json()["results"] == []


def test_an_auditor_reads_but_never_writes(scenario, api):
    tenant_network(scenario)
    client = api.as_user(scenario.auditor)
    assert client.get("/api/v1/networks/").status_code == 200
    assert client.post("/api/v1/security-groups/", {"name": "x"}, format="json").status_code == 403


def test_a_rule_with_a_bad_port_range_is_refused_and_a_good_one_added_and_deleted(scenario, api):
    group = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="web")
    client = api.as_user(scenario.tenant_admin)
    url = f"/api/v1/security-groups/{group.pk}/rules/"
    for payload in (
        {"direction": "in", "protocol": "tcp", "port_min": 90, "port_max": 80},
        {"direction": "in", "protocol": "tcp", "port_min": 0},
        {"direction": "in", "protocol": "tcp", "port_min": 70000},
        {"direction": "in", "protocol": "icmp", "port_min": 80},
    ):
        response = client.post(url, payload, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["code"] == NetworkError.RULE_PORT_RANGE_INVALID
    assert not SecurityGroupRule.objects.filter(group=group).exists()

    response = client.post(
        url, {"direction": "in", "protocol": "tcp", "port_min": 8080, "remote_cidr": "10.1.0.0/16"}, format="json"
    )
    assert response.status_code == 201, response.content
    rule = response.json()
    assert (rule["port_min"], rule["port_max"], rule["remote_cidr"]) == (8080, 8080, "10.1.0.0/16")
    group.refresh_from_db()
    assert group.revision == 2
    assert client.delete(f"{url}{rule['id']}/").status_code == 204
    assert not SecurityGroupRule.objects.filter(group=group).exists()


def test_a_rule_may_name_a_remote_group_of_the_same_tenant_only(scenario, api):
    group = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="web")
    other = services.security_group_default_ensure(tenant=scenario.tenant_b)
    client = api.as_user(scenario.tenant_admin)
    url = f"/api/v1/security-groups/{group.pk}/rules/"
    assert client.post(url, {"direction": "in", "remote_group": other.pk}, format="json").status_code == 404
    response = client.post(url, {"direction": "in", "protocol": "all", "remote_group": group.pk}, format="json")
    assert response.status_code == 201 and response.json()["remote_group"] == "web"


def test_the_default_group_cannot_be_deleted_and_a_used_group_neither(scenario, api):
    network = tenant_network(scenario)
    default = SecurityGroup.objects.get(tenant=scenario.tenant_a, is_default=True)
    web = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="web")
    services.address_allocate(tenant=scenario.tenant_a, desktop_id=1, network=network, security_group=web)
    client = api.as_user(scenario.tenant_admin)
    assert client.delete(f"/api/v1/security-groups/{default.pk}/").json()["code"] == NetworkError.SECURITY_GROUP_DEFAULT
    assert client.delete(f"/api/v1/security-groups/{web.pk}/").json()["code"] == NetworkError.SECURITY_GROUP_IN_USE


def test_a_desktops_nics_are_listed_with_mac_ip_and_network(scenario, api):
    network = tenant_network(scenario)
    nic = services.address_allocate(tenant=scenario.tenant_a, desktop_id=41, network=network, owner=scenario.student)
    services.address_allocate(tenant=scenario.tenant_a, desktop_id=42, network=network, owner=scenario.student2)
    mine = api.as_user(scenario.student).get("/api/v1/addresses/?desktop=41").json()["results"]
    assert [(a["ip"], a["mac"], a["network"]) for a in mine] == [(nic.ip, nic.mac, "lab")]
    assert api.as_user(scenario.student).get("/api/v1/addresses/?desktop=42").json()["results"] == []
    assert len(api.as_user(scenario.tenant_admin).get("/api/v1/addresses/").json()["results"]) == 2
    assert selectors.nics_for_desktops([41])[41][0]["mac"] == nic.mac


def test_a_full_subnet_is_a_409_when_reserving(scenario, api):
    network = tenant_network(scenario, cidr="10.231.8.0/29")
    subnet = network.subnets.get()
    client = api.as_user(scenario.tenant_admin)
    response = client.post(f"/api/v1/subnets/{subnet.pk}/reserve/", {"ip": "10.231.8.1"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == NetworkError.IP_OUTSIDE_SUBNET  # the gateway
    response = client.post(f"/api/v1/subnets/{subnet.pk}/reserve/", {"ip": "10.231.8.3"}, format="json")
    assert response.status_code == 201
    response = client.post(f"/api/v1/subnets/{subnet.pk}/reserve/", {"ip": "10.231.8.3"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == NetworkError.IP_IN_USE


def test_elastic_ip_and_port_forward_through_the_api_start_unapplied(scenario, api):
    network = tenant_network(scenario)
    nic = services.address_allocate(tenant=scenario.tenant_a, desktop_id=5, network=network)
    PublicPool.objects.create(name="campus", cidr="198.51.100.0/29")
    client = api.as_user(scenario.tenant_admin)
    response = client.post("/api/v1/elastic-ips/", {}, format="json")
    assert response.status_code == 201, response.content
    eip = response.json()
    assert eip["ip"] == "198.51.100.1" and eip["applied"] is False
    response = client.post(f"/api/v1/elastic-ips/{eip['id']}/associate/", {"address": nic.pk}, format="json")
    assert response.status_code == 200 and response.json()["address_ip"] == nic.ip
    payload = {"elastic_ip": eip["id"], "address": nic.pk, "public_port": 2222, "private_port": 22}
    assert client.post("/api/v1/port-forwards/", payload, format="json").status_code == 201
    again = client.post("/api/v1/port-forwards/", payload, format="json")
    assert again.status_code == 409 and again.json()["code"] == NetworkError.PORT_FORWARD_TAKEN
    assert client.delete(f"/api/v1/elastic-ips/{eip['id']}/").json()["code"] == NetworkError.EIP_IN_USE


def test_list_endpoints_cost_a_constant_number_of_queries(scenario, api):
    client = api.as_user(scenario.tenant_admin)
    network = tenant_network(scenario, cidr="10.231.0.0/16", name="big")
    services.address_allocate(tenant=scenario.tenant_a, desktop_id=10_000, network=network)

    def networks(n):
        for _ in range(n):
            i = next(_n)
            tenant_network(scenario, cidr=f"10.232.{i}.0/24", name=f"n{i}")

    def addresses(n):
        for _ in range(n):
            services.address_allocate(tenant=scenario.tenant_a, desktop_id=next(_n), network=network)

    def groups(n):
        for _ in range(n):
            group = services.security_group_create(
                actor=scenario.sysadmin, tenant=scenario.tenant_a, name=f"g{next(_n)}"
            )
            services.rule_add(actor=scenario.sysadmin, group=group, direction="in", remote_group=group)

    client.get("/api/v1/networks/")  # warm the per-user role caches first
    assert_constant_queries(lambda: client.get("/api/v1/networks/"), networks)
    assert_constant_queries(lambda: client.get("/api/v1/subnets/"), networks)
    assert_constant_queries(lambda: client.get("/api/v1/addresses/"), addresses)
    assert_constant_queries(lambda: client.get("/api/v1/security-groups/"), groups)
    assert Address.objects.count() == 31


def test_the_security_admin_and_strangers_see_nothing_of_a_tenants_network(scenario, api):
    network = tenant_network(scenario)
    services.address_allocate(tenant=scenario.tenant_a, desktop_id=3, network=network, owner=scenario.student)
    for user in (scenario.secadmin, scenario.stranger, scenario.stranger_admin):
        client = api.as_user(user)
        for url in ("/api/v1/networks/", "/api/v1/subnets/", "/api/v1/addresses/", "/api/v1/security-groups/"):
            assert client.get(url).json()["results"] == [], (user, url)
    # The audit admin reads everything, read-only.
    auditadmin = api.as_user(scenario.auditadmin)
    assert len(auditadmin.get("/api/v1/addresses/").json()["results"]) == 1
    assert auditadmin.post("/api/v1/public-pools/", {"name": "p", "cidr": "198.51.100.0/28"}).status_code == 403


def test_elastic_ips_count_against_the_tenants_ip_quota_and_release_it(scenario, api):
    from tenants.quotas import quota_set

    quota_set(actor=None, tenant=scenario.tenant_a, limits={"ips": 1})
    PublicPool.objects.create(name="campus", cidr="198.51.100.0/29")
    client = api.as_user(scenario.tenant_admin)
    first = client.post("/api/v1/elastic-ips/", {}, format="json")
    assert first.status_code == 201
    second = client.post("/api/v1/elastic-ips/", {}, format="json")
    assert second.status_code == 409 and second.json()["code"] == TenantsError.QUOTA_EXCEEDED
    assert client.delete(f"/api/v1/elastic-ips/{first.json()['id']}/").status_code == 204
    assert client.post("/api/v1/elastic-ips/", {}, format="json").status_code == 201

"""The network pages: lists with empty states, creation through forms, another tenant's object a 404."""

from django.test import Client

from network import services
from network.models import Network, SecurityGroup, SecurityGroupRule
from tests.network.conftest import tenant_network

FORM = {"net-tenant": "cs", "net-kind": "router", "net-segment_type": "none"}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_network_list_shows_an_empty_state_then_the_created_network(scenario):
    client = _client(scenario.tenant_admin)
    page = client.get("/network/")
    assert page.status_code == 200
    assert "还没有网络" in page.content.decode()
    response = client.post(
        "/network/",
        {
            "net-tenant": "cs",
            "net-name": "lab",
            "net-kind": "router",
            "net-segment_type": "none",
            "net-cidr": "10.231.3.0/24",
        },
    )
    network = Network.objects.get(name="lab")
    assert response.status_code == 302 and response["Location"] == f"/network/{network.pk}/"
    detail = client.get(f"/network/{network.pk}/").content.decode()
    assert "10.231.3.0/24" in detail and "已用 0，空闲 253" in detail


def test_an_overlapping_cidr_is_a_form_error_not_a_500(scenario):
    tenant_network(scenario, cidr="10.231.3.0/24")
    response = _client(scenario.tenant_admin).post(
        "/network/",
        {
            "net-tenant": "cs",
            "net-name": "x",
            "net-kind": "router",
            "net-segment_type": "none",
            "net-cidr": "10.231.3.0/25",
        },
    )
    assert response.status_code == 200
    assert "重叠" in response.content.decode()
    assert Network.objects.count() == 1


def test_another_tenants_network_and_group_are_404(scenario):
    network = tenant_network(scenario)
    group = SecurityGroup.objects.get(tenant=scenario.tenant_a, is_default=True)
    client = _client(scenario.stranger_admin)
    assert client.get(f"/network/{network.pk}/").status_code == 404
    assert client.get(f"/network/security-groups/{group.pk}/").status_code == 404
    assert client.post(f"/network/{network.pk}/delete/").status_code == 404
    assert Network.objects.filter(pk=network.pk).exists()


def test_a_rule_is_added_through_the_form_and_a_bad_port_range_is_explained(scenario):
    group = services.security_group_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="web")
    client = _client(scenario.tenant_admin)
    url = f"/network/security-groups/{group.pk}/"
    bad = client.post(url, {"rule-direction": "in", "rule-protocol": "tcp", "rule-port_min": 90, "rule-port_max": 80})
    assert bad.status_code == 200 and "端口范围" in bad.content.decode()
    good = client.post(url, {"rule-direction": "in", "rule-protocol": "tcp", "rule-port_min": 443})
    assert good.status_code == 302
    rule = SecurityGroupRule.objects.get(group=group)
    assert (rule.port_min, rule.port_max) == (443, 443)
    assert client.post(f"/network/security-groups/{group.pk}/rules/{rule.pk}/delete/").status_code == 302
    assert not SecurityGroupRule.objects.filter(group=group).exists()


def test_a_student_reads_networks_but_gets_no_forms(scenario):
    tenant_network(scenario)
    client = _client(scenario.student)
    page = client.get("/network/").content.decode()
    assert "lab" in page and 'data-testid="network-form"' not in page
    assert client.get("/network/security-groups/").status_code == 200
    assert client.get("/network/elastic-ips/").status_code == 200

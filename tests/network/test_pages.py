"""The network pages: lists with empty states, creation through forms, another tenant's object a 404."""

from django.test import Client

from network import services
from network.models import Network, SecurityGroup, SecurityGroupRule
from tests.network.conftest import tenant_network, tenant_pool

FORM = {"net-tenant": "cs", "net-kind": "router", "net-segment_type": "none"}


def _client(user) -> Client:
    from audit.testing import force_login_verified

    client = Client()
    force_login_verified(client, user)  # the platform admins need their second factor on pages
    return client


def test_the_network_list_shows_an_empty_state_then_the_created_network(scenario):
    tenant_pool(scenario)
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


def test_the_system_admin_creates_and_assigns_segments_and_pools_on_the_page(scenario):
    from network.models import AddressPool, Segment

    client = _client(scenario.sysadmin)
    assert "还没有物理网段" in client.get("/network/segments/").content.decode()
    made = client.post(
        "/network/segments/",
        {"seg-name": "lab-br", "seg-kind": "bridge", "seg-site": "main", "seg-bridge": "br-lab"},
    )
    assert made.status_code == 302, made.content.decode()[-2000:]
    segment = Segment.objects.get(name="lab-br")
    bad = client.post(
        "/network/segments/", {"seg-name": "x", "seg-kind": "bridge", "seg-site": "main", "seg-bridge": "br 0"}
    )
    assert bad.status_code == 200 and "bridge" in bad.content.decode()
    assert client.post(f"/network/segments/{segment.pk}/assign/", {"tenant": "cs"}).status_code == 302
    assert list(segment.assignments.values_list("tenant__slug", flat=True)) == ["cs"]
    pool = client.post(
        "/network/segments/",
        {"pool-name": "cs-pool", "pool-cidr": "10.231.0.0/16", "pool-min_prefixlen": 22, "pool-tenant": "cs"},
    )
    assert pool.status_code == 302
    assert AddressPool.objects.get(name="cs-pool").tenant == scenario.tenant_a

    # cs's admin sees both, without the forms, and picks the segment in the network form (no bridge field).
    admin = _client(scenario.tenant_admin)
    page = admin.get("/network/segments/").content.decode()
    assert "lab-br" in page and "cs-pool" in page and 'data-testid="segment-form"' not in page
    form = admin.get("/network/").content.decode()
    assert f'<option value="{segment.pk}"' in form and 'name="net-bridge"' not in form
    assert "10.231.0.0/16" in form  # the usable pools are named under the form
    created = admin.post(
        "/network/",
        {
            **FORM,
            "net-name": "flat",
            "net-kind": "flat",
            "net-platform_segment": segment.pk,
            "net-cidr": "10.231.4.0/24",
        },
    )
    assert created.status_code == 302
    assert Network.objects.get(name="flat").bridge == "br-lab"

    # Taking it back while in use is explained, not a 500.
    refused = client.post(f"/network/segments/{segment.pk}/assign/", {"tenant": "cs", "assigned": "0"}, follow=True)
    assert refused.status_code == 200 and "不能收回" in refused.content.decode()


def test_segments_of_another_tenant_are_404_and_students_see_an_explanation(scenario):
    segment = services.segment_create(actor=scenario.sysadmin, name="cs-br", kind="bridge", bridge="br-cs")
    services.segment_assign(actor=scenario.sysadmin, segment=segment, tenant=scenario.tenant_a)
    stranger = _client(scenario.stranger_admin)
    assert "br-cs" not in stranger.get("/network/segments/").content.decode()
    assert stranger.post(f"/network/segments/{segment.pk}/assign/", {"tenant": "me"}).status_code == 404
    assert stranger.post(f"/network/segments/{segment.pk}/delete/").status_code == 404
    # cs's admin sees it but may not assign it further.
    admin = _client(scenario.tenant_admin)
    assert admin.post(f"/network/segments/{segment.pk}/assign/", {"tenant": "me"}).status_code == 302
    assert list(segment.assignments.values_list("tenant__slug", flat=True)) == ["cs"]
    page = _client(scenario.student).get("/network/segments/").content.decode()
    assert "没有分配给您所在租户的物理网段" in page

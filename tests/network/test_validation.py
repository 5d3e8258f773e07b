"""#14.2: every string that reaches dnsmasq, iptables, libvirt XML or a port-group name is checked
against a strict pattern at the service; the API answers 400 naming the field."""

import pytest

from common.errors import InvalidInput
from network import services
from network.errors import NetworkError
from network.models import Address, Network, PublicPool
from network.validation import hostname_from
from tests.network.conftest import tenant_network


def _refused(response, code, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]["field"] == field
    assert field in body["message"]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        # str.isalnum() takes letters of any script: this one reached the domain XML before.
        ({"kind": "flat", "bridge": "网桥一"}, NetworkError.BRIDGE_INVALID, "bridge"),
        ({"kind": "flat", "bridge": "br0.120"}, NetworkError.BRIDGE_INVALID, "bridge"),
        ({"kind": "flat", "portgroup": "pg'/><source network='x"}, NetworkError.PORTGROUP_INVALID, "portgroup"),
        ({"kind": "flat", "portgroup": "lab\nVM Network"}, NetworkError.PORTGROUP_INVALID, "portgroup"),
    ],
)
def test_bridge_and_port_group_names_outside_the_pattern_are_a_400_naming_the_field(
    scenario, api, payload, code, field
):
    client = api.as_user(scenario.sysadmin)
    body = {"name": "flat", "tenant": "cs", "cidr": "10.231.60.0/24", **payload}
    _refused(client.post("/api/v1/networks/", body, format="json"), code, field)
    assert not Network.objects.filter(name="flat").exists()


def test_plain_bridge_and_port_group_names_still_pass(scenario):
    network = services.network_create(
        actor=scenario.sysadmin, tenant=None, name="pg", kind="flat", portgroup="VM Network", cidr="10.231.61.0/24"
    )
    assert network.portgroup == "VM Network"
    network = services.network_create(
        actor=scenario.sysadmin, tenant=None, name="br", kind="flat", bridge="br-lab_2", cidr="10.231.62.0/24"
    )
    assert network.bridge == "br-lab_2"


@pytest.mark.parametrize(
    "hostname",
    [
        "printer\ndhcp-option=3,10.0.0.66",  # a second dnsmasq line
        "printer,10.231.63.9",  # a dnsmasq field separator
        "-printer",
        "打印机",
        "printer.lab",  # one label only: a dot would make dnsmasq read a domain
    ],
)
def test_a_reserved_address_host_name_outside_rfc1123_is_a_400_naming_the_field(scenario, api, hostname):
    subnet = tenant_network(scenario, cidr="10.231.63.0/24").subnets.get()
    client = api.as_user(scenario.tenant_admin)
    response = client.post(
        f"/api/v1/subnets/{subnet.pk}/reserve/",
        {"ip": "10.231.63.9", "mac": "52:54:00:aa:bb:cc", "hostname": hostname},
        format="json",
    )
    _refused(response, NetworkError.HOSTNAME_INVALID, "hostname")
    assert not Address.objects.filter(subnet=subnet).exists()
    ok = client.post(
        f"/api/v1/subnets/{subnet.pk}/reserve/",
        {"ip": "10.231.63.9", "mac": "52:54:00:aa:bb:cc", "hostname": "printer-2"},
        format="json",
    )
    assert ok.status_code == 201 and ok.json()["hostname"] == "printer-2"


def test_a_host_name_longer_than_one_label_is_refused_by_the_service_too(scenario):
    subnet = tenant_network(scenario, cidr="10.231.65.0/24").subnets.get()
    with pytest.raises(InvalidInput) as refused:
        services.address_reserve(actor=scenario.tenant_admin, subnet=subnet, ip="10.231.65.9", hostname="a" * 64)
    assert refused.value.code == NetworkError.HOSTNAME_INVALID and refused.value.detail["field"] == "hostname"


def test_a_public_pool_name_outside_the_pattern_is_a_400(scenario, api):
    client = api.as_user(scenario.sysadmin)
    response = client.post("/api/v1/public-pools/", {"name": "p;iptables -F", "cidr": "198.51.100.0/28"})
    _refused(response, NetworkError.NAME_INVALID, "name")
    assert not PublicPool.objects.exists()


def test_a_site_outside_the_slug_pattern_is_refused_by_the_service(scenario):
    with pytest.raises(InvalidInput) as refused:
        services.segment_range_set(actor=scenario.sysadmin, site="main'; --", kind="vlan", first=1, last=9)
    assert refused.value.code == NetworkError.SITE_INVALID and refused.value.detail["field"] == "site"
    with pytest.raises(InvalidInput) as refused:
        services.network_create(actor=scenario.sysadmin, tenant=None, name="x", site="Main Campus", cidr="10.9.0.0/24")
    assert refused.value.code == NetworkError.SITE_INVALID


def test_a_desktops_nic_gets_a_host_name_dnsmasq_accepts_whatever_its_vm_name(scenario):
    network = tenant_network(scenario, cidr="10.231.64.0/24")
    nic = services.address_allocate(
        tenant=scenario.tenant_a, desktop_id=64, network=network, hostname="Win10 Lab,PC\n#1"
    )
    assert nic.hostname == "Win10-Lab-PC-1"
    assert hostname_from("——") == ""

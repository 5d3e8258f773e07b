"""IPAM: networks, subnets, addresses and MACs; race-safety on MariaDB; refusals with codes."""

import ipaddress
import re

import pytest
from django.utils import timezone

from common.errors import Conflict, Forbidden, InvalidInput
from network import selectors, services
from network.errors import NetworkError
from network.models import Address, Network, SegmentRange, Subnet
from tests.network.conftest import in_threads, tenant_network, tenant_pool

MAC_RE = re.compile(r"^52:54:00(:[0-9a-f]{2}){3}$")


def test_network_gets_a_subnet_with_gateway_and_dhcp_range(scenario):
    network = tenant_network(scenario, cidr="10.231.1.0/24", dns_servers="10.0.0.53, 10.0.0.54")
    subnet = network.subnets.get()
    assert (subnet.gateway, subnet.dhcp_start, subnet.dhcp_end) == ("10.231.1.1", "10.231.1.2", "10.231.1.254")
    assert subnet.dns_list == ["10.0.0.53", "10.0.0.54"]
    assert selectors.subnet_usage(subnet) == {"size": 253, "used": 0, "free": 253}


def test_overlapping_cidr_in_one_tenant_is_refused_and_nothing_is_created(scenario):
    tenant_network(scenario, cidr="10.231.0.0/23")
    with pytest.raises(Conflict) as info:
        tenant_network(scenario, cidr="10.231.1.0/24", name="second")
    assert info.value.code == NetworkError.CIDR_OVERLAP
    assert not Network.objects.filter(name="second").exists()
    # Another tenant may use the same range: tenants are isolated from each other.
    tenant_network(scenario, cidr="10.231.1.0/24", name="other", tenant=scenario.tenant_b)


def test_bad_addressing_is_refused_with_a_code(scenario):
    for kwargs, code in [
        ({"cidr": "10.231.1.0/33"}, NetworkError.CIDR_INVALID),
        ({"cidr": "10.231.1.5/24"}, NetworkError.CIDR_INVALID),
        ({"cidr": "10.231.1.0/24", "gateway": "10.231.2.1"}, NetworkError.IP_OUTSIDE_SUBNET),
        (
            {"cidr": "10.231.1.0/24", "dhcp_start": "10.231.1.200", "dhcp_end": "10.231.1.100"},
            NetworkError.DHCP_RANGE_INVALID,
        ),
    ]:
        with pytest.raises(InvalidInput) as info:
            tenant_network(scenario, **kwargs)
        assert info.value.code == code
    assert not Network.objects.exists()


def test_vlan_ids_come_from_the_sites_range_without_collision(scenario):
    SegmentRange.objects.create(site="main", kind="vlan", first=100, last=101)
    a = tenant_network(scenario, cidr="10.231.1.0/24", name="a", segment_type="vlan")
    b = tenant_network(scenario, cidr="10.231.2.0/24", name="b", segment_type="vlan")
    assert (a.segment_id, b.segment_id) == (100, 101)
    with pytest.raises(Conflict) as info:
        tenant_network(scenario, cidr="10.231.3.0/24", name="c", segment_type="vlan")
    assert info.value.code == NetworkError.SEGMENT_EXHAUSTED
    with pytest.raises(InvalidInput) as info:
        tenant_network(scenario, cidr="10.231.3.0/24", name="c", segment_type="vlan", segment_id=4000)
    assert info.value.code == NetworkError.SEGMENT_OUT_OF_RANGE
    with pytest.raises(Conflict) as info:
        tenant_network(scenario, cidr="10.231.3.0/24", name="c", segment_type="vlan", segment_id=100)
    assert info.value.code == NetworkError.SEGMENT_IN_USE
    assert Network.objects.count() == 2


def test_a_student_cannot_create_a_network(scenario):
    with pytest.raises(Forbidden):
        services.network_create(actor=scenario.student, tenant=scenario.tenant_a, name="x", cidr="10.231.9.0/24")
    with pytest.raises(Forbidden):
        services.network_create(actor=scenario.tenant_admin, tenant=None, name="shared", cidr="10.231.9.0/24")
    tenant_pool(scenario)
    services.network_create(actor=scenario.tenant_admin, tenant=scenario.tenant_a, name="x", cidr="10.231.9.0/24")


def test_allocation_skips_gateway_and_reserved_addresses_and_gives_unique_macs(scenario):
    network = tenant_network(scenario, cidr="10.231.1.0/29", gateway="10.231.1.1")
    subnet = network.subnets.get()
    services.address_reserve(actor=scenario.tenant_admin, subnet=subnet, ip="10.231.1.2", hostname="printer")
    first = services.address_allocate(tenant=scenario.tenant_a, desktop_id=1, network=network)
    second = services.address_allocate(tenant=scenario.tenant_a, desktop_id=2, network=network)
    assert (first.ip, second.ip) == ("10.231.1.3", "10.231.1.4")
    assert MAC_RE.match(first.mac) and MAC_RE.match(second.mac) and first.mac != second.mac
    # The same NIC asked again gets the same address (a retried task).
    assert services.address_allocate(tenant=scenario.tenant_a, desktop_id=1, network=network).pk == first.pk
    assert first.security_group.is_default


def test_a_full_subnet_is_a_conflict_with_a_code(scenario):
    network = tenant_network(scenario, cidr="10.231.1.0/29")  # .2-.6 usable: 5 addresses
    for desktop_id in range(5):
        services.address_allocate(tenant=scenario.tenant_a, desktop_id=desktop_id + 1, network=network)
    with pytest.raises(Conflict) as info:
        services.address_allocate(tenant=scenario.tenant_a, desktop_id=99, network=network)
    assert info.value.code == NetworkError.SUBNET_FULL
    assert Address.objects.count() == 5


def test_a_released_address_is_held_then_reused(scenario):
    network = tenant_network(scenario, cidr="10.231.1.0/29")
    first = services.address_allocate(tenant=scenario.tenant_a, desktop_id=1, network=network)
    services.addresses_release(desktop_id=1, hold=3600)
    held = services.address_allocate(tenant=scenario.tenant_a, desktop_id=2, network=network)
    assert held.ip != first.ip  # still held: a guest may hold the lease
    Address.objects.filter(pk=first.pk).update(hold_until=timezone.now())
    again = services.address_allocate(tenant=scenario.tenant_a, desktop_id=3, network=network)
    assert again.ip == first.ip
    assert selectors.nics_for_desktops([1, 2, 3]) == {
        1: [],
        2: [pytest.approx(selectors.nics_for_desktops([2])[2][0])],
        3: [pytest.approx(selectors.nics_for_desktops([3])[3][0])],
    }


def test_another_tenants_network_cannot_be_allocated_from(scenario):
    network = tenant_network(scenario, cidr="10.231.1.0/24")
    with pytest.raises(Exception) as info:
        services.address_allocate(tenant=scenario.tenant_b, desktop_id=1, network=network)
    assert getattr(info.value, "code", "") == NetworkError.NETWORK_NOT_FOUND


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_allocations_get_twenty_different_ips_and_macs(scenario):
    network = tenant_network(scenario, cidr="10.231.1.0/27")
    tenant = scenario.tenant_a

    def allocate(i):
        return services.address_allocate(tenant=tenant, desktop_id=1000 + i, network=network).pk

    results = in_threads(allocate, 20)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    rows = list(Address.objects.filter(subnet__network=network).values_list("ip", "mac"))
    assert len(rows) == 20
    assert len({ip for ip, _ in rows}) == 20
    assert len({mac for _, mac in rows}) == 20
    assert all(ipaddress.IPv4Address(ip) in ipaddress.IPv4Network("10.231.1.0/27") for ip, _ in rows)


@pytest.mark.django_db(transaction=True)
def test_concurrent_networks_never_share_a_vlan_id_or_overlap(scenario):
    SegmentRange.objects.create(site="main", kind="vlan", first=200, last=299)
    admin, tenant = scenario.sysadmin, scenario.tenant_a

    def create(i):
        # Pairs of threads ask for the same CIDR: exactly one of each pair may win.
        return services.network_create(
            actor=admin, tenant=tenant, name=f"n{i}", cidr=f"10.231.{100 + i // 2}.0/24", segment_type="vlan"
        ).segment_id

    results = in_threads(create, 10)
    created = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 5 and len(refused) == 5, results
    assert len(set(created)) == 5
    assert {r.code for r in refused} == {NetworkError.CIDR_OVERLAP}
    assert Subnet.objects.count() == 5

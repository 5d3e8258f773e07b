"""#14.1 provider networks: a shared network the system admin puts on a platform segment serves only the
tenants that segment is assigned to (inherited down the tree); a shared network without a segment
stays platform-wide."""

import pytest

from common.errors import NotFound
from network import selectors, services
from network.errors import NetworkError
from tests import factories


def _provider(scenario, *, tenant):
    segment = services.segment_create(actor=scenario.sysadmin, name="campus-120", kind="vlan", first=120, last=120)
    services.segment_assign(actor=scenario.sysadmin, segment=segment, tenant=tenant)
    return services.network_create(
        actor=scenario.sysadmin, tenant=None, name="campus", kind="flat", platform_segment=segment, cidr="10.99.0.0/24"
    )


def test_a_provider_network_is_seen_and_used_only_by_the_tenants_it_is_assigned_to(scenario, api):
    network = _provider(scenario, tenant=scenario.university)
    assert (network.segment_type, network.segment_id, network.tenant) == ("vlan", 120, None)
    child = factories.TenantFactory(slug="cs-sub", parent=scenario.tenant_a)
    # Assigned to the university: cs (and a tenant under it) inherit it.
    assert network in selectors.network_list_for(scenario.tenant_admin)
    assert selectors.shared_network_usable_by(network, child)
    services.address_allocate(tenant=scenario.tenant_a, desktop_id=120, network=network)


def test_a_provider_network_of_another_tenant_is_a_404_and_never_a_default(scenario, api):
    network = _provider(scenario, tenant=scenario.tenant_a)
    stranger = api.as_user(scenario.stranger_admin)
    assert stranger.get(f"/api/v1/networks/{network.pk}/").status_code == 404
    assert network not in selectors.network_list_for(scenario.stranger)
    assert selectors.default_network_for(scenario.tenant_b) is None
    with pytest.raises(NotFound) as refused:
        services.address_allocate(tenant=scenario.tenant_b, desktop_id=121, network=network)
    assert refused.value.code == NetworkError.NETWORK_NOT_FOUND
    assert selectors.default_network_for(scenario.tenant_a) == network


def test_a_shared_network_without_a_segment_stays_platform_wide(scenario):
    network = services.network_create(actor=scenario.sysadmin, tenant=None, name="all", cidr="10.98.0.0/24")
    assert network in selectors.network_list_for(scenario.stranger)
    services.address_allocate(tenant=scenario.tenant_b, desktop_id=122, network=network)

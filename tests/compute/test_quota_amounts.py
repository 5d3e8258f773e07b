"""Issue #13.8: a desktop takes from the quota exactly what its flavor says (memory in MiB, not rounded
up to whole GiB), and each of its NIC addresses counts in the "IP 地址" quota, as billing meters it."""

import pytest
from django.db.models import Sum
from django.test import Client

from billing.models import CURSOR_MODELS
from compute import services
from compute.models import Flavor
from network.models import Address, Network, PublicPool, Subnet
from network.services import elastic_ip_allocate, elastic_ip_associate
from tenants.models import Quota
from tenants.quotas import QuotaExceeded
from tenants.services import quota_set


@pytest.fixture
def tiny_256(scenario):
    return Flavor.objects.filter(name="tiny256").first() or services.flavor_create(
        actor=scenario.sysadmin, name="tiny256", vcpus=1, memory_mib=256, disk_gib=1
    )


def _desktop(scenario, compute_env, flavor):
    return services.desktop_create(
        actor=scenario.student,
        tenant=scenario.tenant_a,
        image_version=compute_env.version,
        flavor=flavor,
    )


def _tenant_quota(scenario) -> Quota:
    return Quota.objects.get(scope="tenant", tenant=scenario.tenant_a)


def test_a_256_mib_desktop_takes_256_mib_of_the_quota(scenario, compute_env, tiny_256):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"ram_mib": 4096})

    _desktop(scenario, compute_env, tiny_256)

    assert _tenant_quota(scenario).reserved_ram_mib == 256


def test_a_quota_with_1_gib_left_fits_four_256_mib_desktops(scenario, compute_env, tiny_256):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"ram_mib": 1024})

    for _ in range(4):  # rounded up to whole GiB, only the first would fit
        _desktop(scenario, compute_env, tiny_256)
    with pytest.raises(QuotaExceeded) as refused:
        _desktop(scenario, compute_env, tiny_256)

    (shortfall,) = refused.value.shortfalls
    assert (shortfall.resource, shortfall.requested, shortfall.available) == ("ram_mib", 256, 0)
    assert "申请 256 MiB，可用 0 MiB" in shortfall.message


@pytest.fixture
def tenant_network(scenario):
    network = Network.objects.create(tenant=scenario.tenant_a, name="cs-lab")
    Subnet.objects.create(
        network=network, cidr="10.9.0.0/24", gateway="10.9.0.1", dhcp_start="10.9.0.10", dhcp_end="10.9.0.200"
    )
    return network


def test_a_desktop_holds_one_address_of_the_ip_quota(scenario, compute_env, tenant_network):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"ips": 1})

    _desktop(scenario, compute_env, compute_env.flavor)
    with pytest.raises(QuotaExceeded) as refused:
        _desktop(scenario, compute_env, compute_env.flavor)

    assert _tenant_quota(scenario).reserved_ips == 1
    assert [s.resource for s in refused.value.shortfalls] == ["ips"]


def _metered_ips(tenant) -> int:
    """Addresses the tenant's open meters hold now: desktops' NICs and elastic IPs (each on its own)."""
    return sum(model.objects.filter(tenant=tenant).aggregate(n=Sum("ips"))["n"] or 0 for model in CURSOR_MODELS)


def test_the_quota_pages_ips_used_are_the_addresses_metered_for_the_tenant_now(
    scenario, compute_env, tenant_network, eager, django_capture_on_commit_callbacks
):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"ips": 10})
    with django_capture_on_commit_callbacks(execute=True):
        desktops = [_desktop(scenario, compute_env, compute_env.flavor) for _ in range(2)]
    address = Address.objects.get(desktop_id=desktops[0].pk)
    pool = PublicPool.objects.create(name="campus", cidr="198.51.100.0/29")
    eip = elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    with django_capture_on_commit_callbacks(execute=True):
        elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)

    metered = _metered_ips(scenario.tenant_a)
    quota = _tenant_quota(scenario)
    assert metered == 2 + 1  # two desktops' NICs and the elastic IP bound to one of them
    assert (quota.used_ips, quota.reserved_ips) == (metered, 0)
    client = Client()
    client.force_login(scenario.tenant_admin)
    page = client.get("/tenants/quotas/").content.decode()
    assert f'data-testid="quota-ips">已用 {metered} · 预留 0 · 上限 10（可用 {10 - metered}）' in page

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_delete(actor=scenario.student, desktop=desktops[1])
    # The deleted desktop's address is freed; the elastic IP, now bound to nothing, is still held.
    assert _tenant_quota(scenario).used_ips == _metered_ips(scenario.tenant_a) == 2

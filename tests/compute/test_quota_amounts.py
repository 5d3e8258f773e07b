"""Issue #13.8: a desktop takes from the quota exactly what its flavor says (memory in MiB, not rounded
up to whole GiB), and each of its NIC addresses counts in the "IP 地址" quota, as billing meters it."""

import pytest

from compute import services
from compute.models import Flavor
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

"""A desktop's NIC through compute's lifecycle: IP/MAC at create, binding where it is placed, release on delete."""

import pytest

from common.errors import Conflict
from compute import networking
from compute import services as compute_services
from compute.hypervisor import driver_for
from compute.models import Desktop
from network import services
from network.errors import NetworkError
from network.models import Address
from tests.compute.conftest import compute_env  # noqa: F401 - compute's fixtures
from tests.network.conftest import tenant_network


def _create(env, user, tenant, capture):
    with capture(execute=True):
        desktop = compute_services.desktop_create(
            actor=user, tenant=tenant, image_version=env.version, flavor=env.flavor
        )
    desktop.refresh_from_db()
    return desktop


def _hosts(endpoint, network):
    return {h.mac: h.ip for h in driver_for(endpoint).dhcp_hosts(networking.libvirt_network_name(network, endpoint))}


def test_a_new_desktop_gets_its_ip_and_mac_and_runs_on_its_tenants_network(
    scenario,
    compute_env,  # noqa: F811
    eager,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    network = tenant_network(scenario)
    desktop = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)

    assert desktop.state == Desktop.State.RUNNING
    address = Address.objects.get(desktop_id=desktop.pk)
    assert (desktop.mac, desktop.guest_ip) == (address.mac, address.ip)
    assert address.owner == scenario.student and address.security_group.is_default
    vm = driver_for(compute_env.endpoint).get_vm(desktop.vm_name)
    assert [(n.mac, n.network) for n in vm.nics] == [
        (address.mac, networking.libvirt_network_name(network, compute_env.endpoint))
    ]
    assert _hosts(compute_env.endpoint, network) == {address.mac: address.ip}

    with django_capture_on_commit_callbacks(execute=True):
        compute_services.desktop_delete(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.DELETED
    address.refresh_from_db()
    assert address.state == Address.State.HELD
    assert _hosts(compute_env.endpoint, network) == {}


def test_without_a_network_a_desktop_keeps_the_endpoints_default_network(
    scenario,
    compute_env,  # noqa: F811
    eager,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    desktop = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)
    assert desktop.state == Desktop.State.RUNNING
    assert not Address.objects.filter(desktop_id=desktop.pk).exists()


def test_a_full_subnet_refuses_the_desktop_and_nothing_is_created(
    scenario,
    compute_env,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    network = tenant_network(scenario, cidr="10.231.1.0/29")  # five addresses after the gateway
    for desktop_id in range(10_001, 10_006):
        services.address_allocate(tenant=scenario.tenant_a, desktop_id=desktop_id, network=network)
    with pytest.raises(Conflict) as info:
        _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)
    assert info.value.code == NetworkError.SUBNET_FULL
    assert not Desktop.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_desktops_created_at_once_get_different_addresses(scenario, compute_env):  # noqa: F811
    from tests.network.conftest import in_threads

    tenant_network(scenario)
    env, admin, tenant = compute_env, scenario.tenant_admin, scenario.tenant_a

    def create(_i):
        return compute_services.desktop_create(
            actor=admin, tenant=tenant, owner=scenario.student, image_version=env.version, flavor=env.flavor
        ).pk

    results = in_threads(create, 10)
    assert not [r for r in results if isinstance(r, Exception)], results
    rows = list(Address.objects.filter(desktop_id__in=results).values_list("ip", "mac"))
    assert len(rows) == 10 and len({ip for ip, _ in rows}) == 10 and len({mac for _, mac in rows}) == 10
    assert sorted(Desktop.objects.filter(pk__in=results).values_list("guest_ip", flat=True)) == sorted(
        ip for ip, _ in rows
    )

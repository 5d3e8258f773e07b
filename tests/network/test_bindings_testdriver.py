"""IP/MAC bindings follow a desktop across two hosts: two connections to libvirt's test driver.

Each endpoint stands for one host; its libvirt objects carry its own prefix, so the two
"hosts" have separate networks on the one in-memory hypervisor.
"""

import pytest

from compute import networking
from compute.drivers.base import DhcpHost, DriverError, ErrorCode
from compute.hypervisor import driver_for
from network import services
from network.models import Address, NetworkDeployment
from tests.network.conftest import desktop_row, endpoint_make, tenant_network


def _hosts(endpoint, network) -> dict[str, str]:
    return {h.mac: h.ip for h in driver_for(endpoint).dhcp_hosts(networking.libvirt_network_name(network, endpoint))}


def _two_hosts(scenario, run_id):
    a = endpoint_make(scenario, name=f"hosta-{run_id}", prefix=f"a{run_id}")
    # Each endpoint gets its own cached driver, hence its own connection to the test driver.
    b = endpoint_make(scenario, name=f"hostb-{run_id}", prefix=f"b{run_id}")
    return a, b


def test_a_desktops_binding_is_pushed_where_it_runs_and_moves_with_it(scenario, run_id):
    network = tenant_network(scenario)
    a, b = _two_hosts(scenario, run_id)
    desktop = desktop_row(scenario.tenant_a, a, owner=scenario.student)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    desktop.refresh_from_db()
    assert (desktop.mac, desktop.guest_ip) == (address.mac, address.ip)

    nics = networking.desktop_network_prepare(desktop=desktop, driver=driver_for(a))
    assert [(n.network, n.mac) for n in nics] == [(networking.libvirt_network_name(network, a), address.mac)]
    assert _hosts(a, network) == {address.mac: address.ip}
    address.refresh_from_db()
    assert address.pushed_to == a.name

    # The desktop is restarted on B (evacuation): the binding follows it from the database alone.
    desktop.endpoint = b
    desktop.save(update_fields=["endpoint"])
    report = networking.desktop_bindings_push(desktop=desktop)
    assert report["pushed"] == [address.mac]
    assert report["removed_from"] == {a.name: [address.mac]}
    assert _hosts(b, network) == {address.mac: address.ip}
    assert _hosts(a, network) == {}
    assert set(NetworkDeployment.objects.values_list("endpoint", flat=True)) == {a.name, b.name}


def test_the_sync_adds_missing_bindings_removes_stale_ones_and_reports_them(scenario, run_id):
    network = tenant_network(scenario)
    a, b = _two_hosts(scenario, run_id)
    on_a = desktop_row(scenario.tenant_a, a)
    on_b = desktop_row(scenario.tenant_a, b)
    for desktop, endpoint in ((on_a, a), (on_b, b)):
        networking.desktop_nics_allocate(desktop=desktop)
        networking.desktop_network_prepare(desktop=desktop, driver=driver_for(endpoint))
    nic_a = Address.objects.get(desktop_id=on_a.pk)
    nic_b = Address.objects.get(desktop_id=on_b.pk)
    name_a, name_b = (networking.libvirt_network_name(network, e) for e in (a, b))

    # Drift: B lost its entry, A has a stranger's entry and a wrong IP for its own desktop.
    driver_for(b).dhcp_host_remove(name_b, nic_b.mac)
    driver_for(a).dhcp_host_set(name_a, DhcpHost(mac="52:54:00:ee:ee:ee", ip="10.231.1.250"))
    driver_for(a).dhcp_host_remove(name_a, nic_a.mac)
    driver_for(a).dhcp_host_set(name_a, DhcpHost(mac=nic_a.mac, ip="10.231.1.251", name=nic_a.hostname))

    report = networking.dhcp_sync()

    assert report["added"] == 1 and report["removed"] == 1 and report["changed"] == 1, report
    assert report["endpoints"][b.name]["added"] == [{"network": name_b, "mac": nic_b.mac, "ip": nic_b.ip}]
    assert report["endpoints"][a.name]["removed"][0]["mac"] == "52:54:00:ee:ee:ee"
    assert _hosts(a, network) == {nic_a.mac: nic_a.ip}
    assert _hosts(b, network) == {nic_b.mac: nic_b.ip}
    # Nothing left to repair: a second run changes nothing.
    again = networking.dhcp_sync()
    assert (again["added"], again["changed"], again["removed"], again["errors"]) == (0, 0, 0, [])


def test_a_deleted_desktops_binding_leaves_dhcp_and_its_address_is_held(scenario, run_id):
    network = tenant_network(scenario)
    a, _b = _two_hosts(scenario, run_id)
    desktop = desktop_row(scenario.tenant_a, a)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    networking.desktop_network_prepare(desktop=desktop, driver=driver_for(a))
    assert _hosts(a, network) == {address.mac: address.ip}

    networking.desktop_bindings_release(desktop=desktop, hold=600)

    assert _hosts(a, network) == {}
    address.refresh_from_db()
    assert address.state == Address.State.HELD and address.hold_until is not None


def test_an_unreachable_old_host_keeps_its_entry_until_the_sync_once_it_is_back(scenario, run_id):
    network = tenant_network(scenario)
    a, b = _two_hosts(scenario, run_id)
    desktop = desktop_row(scenario.tenant_a, a)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    networking.desktop_network_prepare(desktop=desktop, driver=driver_for(a))

    # A goes away (its address now leads nowhere), and the desktop is restarted on B.
    real_url = a.url
    a.url = "qemu+unix:///system?socket=/nonexistent/cc-network-test.sock"
    a.save(update_fields=["url"])
    desktop.endpoint = b
    desktop.save(update_fields=["endpoint"])
    report = networking.desktop_bindings_push(desktop=desktop)
    assert report["pushed"] == [address.mac]
    assert a.name in report["pending"]
    assert _hosts(b, network) == {address.mac: address.ip}
    down = networking.dhcp_sync()
    assert down["errors"] and down["endpoints"][a.name]["errors"]

    # A is back: the sync removes the stale entry there.
    a.url = real_url
    a.save(update_fields=["url"])
    assert _hosts(a, network) == {address.mac: address.ip}
    back = networking.dhcp_sync()
    assert back["endpoints"][a.name]["removed"] == [
        {"network": networking.libvirt_network_name(network, a), "mac": address.mac, "ip": address.ip}
    ]
    assert _hosts(a, network) == {}
    assert _hosts(b, network) == {address.mac: address.ip}


def test_the_sync_releases_the_nics_of_deleted_desktops_and_clears_their_bindings(scenario, run_id):
    network = tenant_network(scenario)
    a, _b = _two_hosts(scenario, run_id)
    desktop = desktop_row(scenario.tenant_a, a)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    networking.desktop_network_prepare(desktop=desktop, driver=driver_for(a))
    desktop.state = "deleted"  # deleted, but its release step never ran
    desktop.save(update_fields=["state"])

    report = networking.dhcp_sync()

    assert report["released"] == 1
    assert report["endpoints"][a.name]["removed"][0]["mac"] == address.mac
    address.refresh_from_db()
    assert address.state == Address.State.HELD
    assert _hosts(a, network) == {}


def test_a_deleted_network_leaves_the_endpoints_that_had_it(
    scenario,
    run_id,
    eager,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    network = tenant_network(scenario)
    a, _b = _two_hosts(scenario, run_id)
    name = networking.network_ensure_on(network=network, endpoint=a)
    assert driver_for(a).dhcp_hosts(name) == []

    with django_capture_on_commit_callbacks(execute=True):
        services.network_delete(actor=scenario.tenant_admin, network=network)

    with pytest.raises(DriverError) as info:
        driver_for(a).dhcp_hosts(name)
    assert info.value.code == ErrorCode.NOT_FOUND

"""Desktops on testbed hosts boot the tiny guest OS through the portal's own services: the guest takes
by DHCP exactly the IP and MAC the portal's IPAM gave its desktop, the host answers its pings and HTTP,
and two guests on one host ping each other (a peer named on the kernel command line, or asked for)."""

import ipaddress

import pytest

from compute import services
from compute.models import Desktop
from compute.networking.specs import bridge_name
from network import services as network_services
from tests.harness.guest import guest_address, guest_http, guest_log, guest_ping, host_ping, wait_for_guest

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed]


def _host_address_on(host, bridge: str, cidr: str) -> str:
    """The host's own address on the network's bridge (today the gateway; with networks spanning
    hosts, its DHCP address): the host reaches its guests through it."""
    subnet = ipaddress.IPv4Network(cidr)
    for line in host.run("ip", "-4", "-o", "addr", "show", "dev", bridge).stdout.splitlines():
        address = ipaddress.IPv4Interface(line.split()[3]).ip
        if address in subnet:
            return str(address)
    raise AssertionError(f"{host.name} has no address of {cidr} on {bridge}")


@pytest.mark.django_db(transaction=True)  # the tasks start on commit
def test_the_guest_takes_the_address_ipam_gave_its_desktop_and_the_host_reaches_it(testbed, scenario, guest_env, eager):
    cidr = guest_env.free_cidr()
    network = network_services.network_create(actor=scenario.sysadmin, tenant=scenario.tenant_a, name="lab", cidr=cidr)
    subnet = network.subnets.get()

    desktop = guest_env.desktop_on("h1", actor=scenario.sysadmin, tenant=scenario.tenant_a, owner=scenario.student)

    assert desktop.guest_ip and desktop.mac  # IPAM's allocation, before the guest ever ran
    seen = guest_address(desktop)
    assert (seen["ip"], seen["mac"]) == (desktop.guest_ip, desktop.mac)
    assert seen["gw"] == subnet.gateway
    assert seen["mask"] == str(ipaddress.IPv4Network(cidr).prefixlen)
    host = testbed[desktop.host.name]
    _host_address_on(host, bridge_name(network, desktop.endpoint), cidr)
    wait_for_guest(desktop, r"CCGUEST up port=80")
    assert host_ping(host, desktop.guest_ip)
    assert guest_http(desktop) == ""  # the default security group lets in SSH, RDP and ping only
    guest_env.open_port(scenario.sysadmin, scenario.tenant_a, 80)
    assert guest_http(desktop).split() == [desktop.vm_name, desktop.guest_ip]  # hostname from DHCP too


@pytest.mark.django_db(transaction=True)
def test_two_guests_on_one_host_ping_each_other(testbed, scenario, guest_env, eager):
    network_services.network_create(
        actor=scenario.sysadmin, tenant=scenario.tenant_a, name="lab", cidr=guest_env.free_cidr()
    )
    guest_env.open_port(scenario.sysadmin, scenario.tenant_a, 80)
    mine = {"actor": scenario.sysadmin, "tenant": scenario.tenant_a, "owner": scenario.student}
    first = guest_env.desktop_on("h3", name="guest-a", **mine)
    pinging = guest_env.image_with(scenario.sysadmin, f"cc.ping={first.guest_ip}")
    second = guest_env.desktop_on("h3", name="guest-b", versions=pinging, **mine)
    guest_address(second)
    wait_for_guest(second, rf"CCGUEST ping {first.guest_ip} ok")
    guest_address(first)
    assert guest_ping(first, second.guest_ip)
    assert not guest_ping(first, str(ipaddress.IPv4Address(second.guest_ip) + 100))
    wait_for_guest(first, rf"CCGUEST ping {second.guest_ip} ok")


@pytest.mark.django_db(transaction=True)
def test_a_restarted_guest_has_a_fresh_console_log_and_the_same_address(testbed, scenario, guest_env, eager):
    network_services.network_create(
        actor=scenario.sysadmin, tenant=scenario.tenant_a, name="lab", cidr=guest_env.free_cidr()
    )
    desktop = guest_env.desktop_on("h2", actor=scenario.sysadmin, tenant=scenario.tenant_a, owner=scenario.student)
    wait_for_guest(desktop, r"CCGUEST up")

    services.desktop_stop(actor=scenario.sysadmin, desktop=desktop)
    assert "CCGUEST up" in guest_log(desktop)  # the log outlives the VM until its next start
    services.desktop_start(actor=scenario.sysadmin, desktop=desktop)

    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
    assert guest_address(desktop)["ip"] == desktop.guest_ip
    wait_for_guest(desktop, r"CCGUEST up")
    assert guest_log(desktop).count("CCGUEST up") == 1  # this boot's only

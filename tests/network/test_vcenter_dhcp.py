"""vCenter has no DHCP service: a NIC of a desktop there is never pushed anywhere, and the API and the
network page say so instead of showing an empty "pushed to" as if it were pending."""

from django.test import Client

from compute import networking
from compute.models import Cluster, Desktop, Endpoint, Site
from network.models import Address
from tests.network.conftest import desktop_row, endpoint_make, tenant_network


def _vcenter() -> Endpoint:
    # No call reaches the hypervisor on this path: the endpoint's kind alone decides.
    site = Site.objects.create(slug="vc", name="vc")
    cluster = Cluster.objects.create(site=site, name="vc-general")
    return Endpoint.objects.create(name="vc", site=site, cluster=cluster, kind="vcenter", url="https://vc.example")


def test_a_nic_on_vcenter_says_it_gets_no_dhcp_from_the_portal_until_it_moves_to_libvirt(scenario, api, run_id):
    network = tenant_network(scenario)
    desktop = desktop_row(scenario.tenant_a, _vcenter(), owner=scenario.student)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    assert networking.desktop_bindings_push(desktop=desktop)["pushed"] == []

    client = api.as_user(scenario.student)
    (nic,) = client.get(f"/api/v1/addresses/?desktop={desktop.pk}").json()["results"]
    assert (nic["pushed_to"], nic["dhcp_status"]) == ("", "vcenter")
    assert "vCenter 没有 DHCP 服务" in nic["dhcp_status_display"]
    page = Client()
    page.force_login(scenario.tenant_admin)
    html = page.get(f"/network/{network.pk}/").content.decode()
    assert 'data-testid="vcenter-dhcp"' in html and "vCenter 没有 DHCP 服务" in html

    # The desktop is restarted on a libvirt host: the portal's DHCP serves it from then on.
    libvirt = endpoint_make(scenario, name=f"kvm-{run_id}", prefix=f"k{run_id}")
    Desktop.objects.filter(pk=desktop.pk).update(endpoint=libvirt)
    desktop.refresh_from_db()
    assert networking.desktop_bindings_push(desktop=desktop)["pushed"] == [address.mac]
    (nic,) = client.get(f"/api/v1/addresses/?desktop={desktop.pk}").json()["results"]
    assert (nic["pushed_to"], nic["dhcp_status"]) == (libvirt.name, "pushed")
    assert Address.objects.get(pk=address.pk).dhcp == Address.Dhcp.PORTAL
    assert 'data-testid="vcenter-dhcp"' not in page.get(f"/network/{network.pk}/").content.decode()


def test_a_libvirt_nic_is_pending_until_pushed(scenario, api, run_id):
    tenant_network(scenario)
    endpoint = endpoint_make(scenario, name=f"kvm-{run_id}", prefix=f"k{run_id}")
    desktop = desktop_row(scenario.tenant_a, endpoint, owner=scenario.student)
    networking.desktop_nics_allocate(desktop=desktop)
    (nic,) = api.as_user(scenario.student).get(f"/api/v1/addresses/?desktop={desktop.pk}").json()["results"]
    assert nic["dhcp_status"] == "pending" and nic["dhcp_status_display"] == "待下发"


def test_the_desktop_lists_nic_columns_say_what_the_address_itself_says(scenario, run_id):
    """nics_for_desktops reads columns, not instances: for every DHCP status (pending, pushed, vCenter,
    a flat network's segment) each NIC says what ``Address`` and its network say."""
    from network.models import Network
    from network.selectors import nics_for_desktops

    network = tenant_network(scenario)
    libvirt = endpoint_make(scenario, name=f"kvm-{run_id}", prefix=f"k{run_id}")
    pending = desktop_row(scenario.tenant_a, libvirt, owner=scenario.student)
    pushed = desktop_row(scenario.tenant_a, libvirt, owner=scenario.student)
    on_vcenter = desktop_row(scenario.tenant_a, _vcenter(), owner=scenario.student)
    for desktop in (pending, pushed, on_vcenter):
        networking.desktop_nics_allocate(desktop=desktop)
    networking.desktop_bindings_push(desktop=pushed)

    def expected(desktop):
        return [
            {
                "mac": a.mac,
                "ip": a.ip,
                "network": a.subnet.network.name,
                "network_id": a.subnet.network_id,
                "cidr": a.subnet.cidr,
                "gateway": a.subnet.gateway,
                "security_group": a.security_group.name if a.security_group_id else "",
                "pushed_to": a.pushed_to,
                "dhcp_status": a.dhcp_status,
                "dhcp_status_display": a.dhcp_status_display,
            }
            for a in Address.objects.filter(desktop_id=desktop.pk, kind=Address.Kind.NIC).order_by("nic_index")
        ]

    read = nics_for_desktops([pending.pk, pushed.pk, on_vcenter.pk])
    assert [nics[0]["dhcp_status"] for nics in read.values()] == ["pending", "pushed", "vcenter"]
    assert read == {d.pk: expected(d) for d in (pending, pushed, on_vcenter)}
    assert read[pending.pk][0]["security_group"]  # the tenant's default group, by name

    Network.objects.filter(pk=network.pk).update(kind=Network.Kind.FLAT)
    read = nics_for_desktops([pending.pk])
    assert read[pending.pk][0]["dhcp_status"] == "segment" and read == {pending.pk: expected(pending)}

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

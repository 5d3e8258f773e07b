"""seed_demo's network part: the cs lab network, default groups, and every demo desktop's binding in DHCP."""

from compute import networking
from compute.hypervisor import driver_for
from network import demo
from network.models import Address, Network, SecurityGroup
from tests.network.conftest import desktop_row, endpoint_make


def test_the_demo_puts_desktops_on_the_cs_network_with_their_bindings_in_dhcp(scenario, run_id):
    first = demo.seed()
    assert first["networks"] == 1
    assert demo.seed() == {"networks": 0, "security_groups": 0}
    network = Network.objects.get(tenant=scenario.tenant_a, name=demo.CS_NETWORK)
    assert network.segment_type == "vlan" and network.segment_id == 100
    assert SecurityGroup.objects.filter(tenant=scenario.tenant_b, is_default=True).exists()

    endpoint = endpoint_make(scenario, name=f"demo-{run_id}", prefix=f"d{run_id}")
    desktops = [desktop_row(scenario.tenant_a, endpoint, owner=scenario.student) for _ in range(3)]
    summary = networking.seed_bindings()
    assert (summary["allocated"], summary["pushed"], summary["errors"]) == (3, 3, [])
    again = networking.seed_bindings()
    assert again["allocated"] == 0

    hosts = {h.mac: h.ip for h in driver_for(endpoint).dhcp_hosts(networking.libvirt_network_name(network, endpoint))}
    nics = Address.objects.filter(desktop_id__in=[d.pk for d in desktops])
    assert hosts == {a.mac: a.ip for a in nics}
    assert all(a.ip.startswith("10.20.1.") for a in nics)

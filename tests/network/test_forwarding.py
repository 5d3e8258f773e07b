"""Where elastic IPs and port forwards can be applied, and what the rows (and the API) say when not.

The rules themselves are tested in the real host firewall (test_forwarding_qemu.py); here the
endpoints are libvirt's test driver and the vCenter kind, which have no host firewall of ours.
"""

from compute import networking
from compute.drivers.base import ErrorCode, ForwardSpec
from compute.drivers.hostfw import HostFirewall, is_local_uri
from network import services
from network.models import ElasticIP, Network, PortForward, PublicPool
from tests.network.conftest import desktop_row, endpoint_make, tenant_network


def _eip(scenario, address):
    pool = PublicPool.objects.create(name="campus", cidr="198.51.100.0/29")
    eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    return services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)


def test_only_the_local_system_daemon_has_a_host_firewall_we_can_program():
    assert is_local_uri("qemu:///system") and is_local_uri("qemu+unix:///system")
    for url in ("qemu+ssh://node1/system", "qemu+tcp://127.0.0.1/system", "qemu:///session", "test:///default"):
        assert not is_local_uri(url), url


def test_a_forward_spec_becomes_dnat_and_accept_rules_and_a_bad_one_is_refused():
    fw = HostFirewall("T")
    spec = ForwardSpec(
        key="eip-1-pf-2",
        public_ip="198.51.100.1",
        private_ip="10.0.0.5",
        bridge="ccbr1",
        protocol="tcp",
        public_port=2222,
        private_port=22,
    )
    dnat, accept = fw.rules(spec)
    assert (dnat.table, dnat.chain, dnat.top) == ("nat", "T-DNAT", True)
    assert dnat.args[-3:] == ("DNAT", "--to-destination", "10.0.0.5:22")
    assert (accept.table, accept.chain) == ("filter", "T-FWD") and "ccbr1" in accept.args
    whole = fw.rules(ForwardSpec(key="eip-1", public_ip="198.51.100.1", private_ip="10.0.0.5", bridge="ccbr1"))
    assert [r.chain for r in whole] == ["T-DNAT", "T-FWD", "T-SNAT"] and not any(r.top for r in whole)
    for bad in (
        {"key": "Bad Key"},
        {"public_ip": "198.51.100.300"},
        {"bridge": "br; rm -rf /"},
        {"protocol": "icmp"},
        {"public_port": 0},
    ):
        fields = {**spec.__dict__, **bad}
        try:
            fw.rules(ForwardSpec(**fields))
        except Exception as exc:  # noqa: BLE001 - the type is asserted below
            assert getattr(exc, "code", "") == ErrorCode.INVALID_SPEC, (bad, exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_on_libvirts_test_driver_the_rows_say_why_nothing_was_applied(scenario, run_id, api):
    tenant_network(scenario)
    endpoint = endpoint_make(scenario, name=f"t-{run_id}", prefix=f"t{run_id}")
    desktop = desktop_row(scenario.tenant_a, endpoint)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    eip = _eip(scenario, address)
    forward = services.port_forward_create(
        actor=scenario.tenant_admin, eip=eip, address=address, public_port=2222, private_port=22
    )

    report = networking.forwarding_apply(eip_id=eip.pk)

    assert len(report["errors"]) == 2 and report["added"] == []
    for row in (ElasticIP.objects.get(pk=eip.pk), PortForward.objects.get(pk=forward.pk)):
        assert (row.applied, row.applied_to) == (False, "")
        assert "only be applied on the portal's own host" in row.apply_note and "test:///default" in row.apply_note
    client = api.as_user(scenario.tenant_admin)
    body = client.get(f"/api/v1/port-forwards/{forward.pk}/").json()
    assert body["applied"] is False and "portal's own host" in body["apply_note"] and body["applied_to"] == ""


def test_vcenter_and_flat_networks_are_not_forwarded_and_say_so(scenario, run_id):
    flat = tenant_network(scenario, name="flat", cidr="10.231.3.0/24", kind=Network.Kind.FLAT, bridge="br0")
    endpoint = endpoint_make(scenario, name=f"t-{run_id}", prefix=f"t{run_id}")
    desktop = desktop_row(scenario.tenant_a, endpoint)
    (address,) = networking.desktop_nics_allocate(desktop=desktop, network=flat)
    eip = _eip(scenario, address)
    assert networking.forwarding_apply(eip_id=eip.pk)["errors"] == []
    eip.refresh_from_db()
    assert not eip.applied and eip.apply_note == "only router (NAT) networks are forwarded by the host firewall"

    endpoint.kind = "vcenter"
    endpoint.save(update_fields=["kind"])
    networking.forwarding_apply(eip_id=eip.pk)
    eip.refresh_from_db()
    assert not eip.applied and eip.apply_note.startswith("vCenter endpoints")


def test_the_periodic_network_task_also_converges_forwards(scenario, run_id):
    from compute.tasks.network import dhcp_sync as dhcp_sync_task

    tenant_network(scenario)
    endpoint = endpoint_make(scenario, name=f"t-{run_id}", prefix=f"t{run_id}")
    desktop = desktop_row(scenario.tenant_a, endpoint)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    eip = _eip(scenario, address)
    ElasticIP.objects.filter(pk=eip.pk).update(apply_note="stale")

    result = dhcp_sync_task()

    assert result["forwarding"]["added"] == 0 and len(result["forwarding"]["errors"]) == 1
    assert "portal's own host" in ElasticIP.objects.get(pk=eip.pk).apply_note

"""Elastic IPs and port forwards in the real host firewall, next to a NAT network on the real libvirtd.

The rules are read back from ``iptables -S`` as the kernel holds them. Every chain the test
makes carries the test's own prefix (the endpoint's ``firewall_prefix``) and is removed
afterwards with the libvirt objects (``qemu_prefix``), so concurrent runs never meet.
"""

import os
import subprocess
import time

import pytest

from compute import networking
from compute.drivers.base import DriverError, ErrorCode, ForwardSpec
from compute.drivers.hostfw import HostFirewall
from compute.hypervisor import driver_for
from compute.models import Desktop
from network import services
from network.models import ElasticIP, PortForward, PublicPool
from tests.harness.hostnet import firewall_chains, free_cidr
from tests.network.conftest import desktop_row, endpoint_make, tenant_network

pytestmark = pytest.mark.libvirt

URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")


def _rules(prefix: str) -> list[str]:
    """The rules of one firewall prefix: its chains' contents and the jumps to them."""
    return [line for line in firewall_chains().splitlines() if f"{prefix}-" in line and not line.startswith("-N")]


def _dnat(prefix: str) -> list[str]:
    return [line for line in _rules(prefix) if line.startswith(f"-A {prefix}-DNAT ")]


def _wait(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert check()


def _setup(scenario, qemu_prefix, *, prefix=None):
    """A NAT network on the real daemon with a desktop's NIC pushed to it, and a public pool."""
    prefix = prefix or qemu_prefix
    network = tenant_network(scenario, cidr=free_cidr())
    endpoint = endpoint_make(scenario, name=f"{prefix}-ep", url=URI, prefix=prefix)
    desktop = desktop_row(scenario.tenant_a, endpoint, vm_name=f"{qemu_prefix}-d")
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    networking.desktop_bindings_push(desktop=desktop)
    pool = services.public_pool_create(actor=scenario.sysadmin, name=f"{qemu_prefix}-pool", cidr="198.51.100.0/28")
    eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    return network, endpoint, desktop, address, eip


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_port_forward_becomes_a_dnat_rule_on_the_host_and_goes_when_deleted(scenario, qemu_prefix, celery_worker):
    """The production path: service → hook → task on a real worker → driver → iptables."""
    network, endpoint, _desktop, address, eip = _setup(scenario, qemu_prefix)
    bridge = networking.bridge_name(network, endpoint)

    forward = services.port_forward_create(
        actor=scenario.tenant_admin, eip=eip, address=address, public_port=2222, private_port=22
    )
    expected = f"-d {eip.ip}/32 -p tcp -m tcp --dport 2222"
    _wait(lambda: any(expected in rule for rule in _dnat(qemu_prefix)))
    (dnat,) = _dnat(qemu_prefix)
    assert dnat.endswith(f"-j DNAT --to-destination {address.ip}:22")
    rules = _rules(qemu_prefix)
    accept = [r for r in rules if r.startswith(f"-A {qemu_prefix}-FWD ")]
    assert len(accept) == 1 and f"-d {address.ip}/32 -o {bridge} -p tcp -m tcp --dport 22" in accept[0]
    # Our accept comes before libvirt's reject of new connections into the NAT network.
    forward_chain = [line for line in firewall_chains().splitlines() if line.startswith("-A FORWARD ")]
    ours = forward_chain.index(f"-A FORWARD -j {qemu_prefix}-FWD")
    assert all(ours < i for i, line in enumerate(forward_chain) if "LIBVIRT_" in line)
    assert f"-A PREROUTING -j {qemu_prefix}-DNAT" in rules
    _wait(lambda: PortForward.objects.get(pk=forward.pk).applied)
    forward.refresh_from_db()
    assert (forward.applied, forward.applied_to, forward.apply_note) == (True, endpoint.name, "")

    services.port_forward_delete(actor=scenario.tenant_admin, forward=forward)
    _wait(lambda: _dnat(qemu_prefix) == [])
    assert not [r for r in _rules(qemu_prefix) if r.startswith(f"-A {qemu_prefix}-FWD ")]


@pytest.mark.django_db(transaction=True)
def test_an_elastic_ip_is_a_one_to_one_nat_a_forward_wins_and_the_sync_repairs_drift(scenario, qemu_prefix):
    network, endpoint, _desktop, address, eip = _setup(scenario, qemu_prefix)
    services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    services.port_forward_create(
        actor=scenario.tenant_admin, eip=eip, address=address, public_port=80, private_port=8080
    )
    networking.forwarding_apply(eip_id=eip.pk)

    dnat = _dnat(qemu_prefix)
    # The forwarded port is matched before the whole address.
    assert "--dport 80" in dnat[0] and dnat[0].endswith(f"--to-destination {address.ip}:8080")
    assert dnat[1].startswith(f"-A {qemu_prefix}-DNAT -d {eip.ip}/32 -m comment")
    assert dnat[1].endswith(f"-j DNAT --to-destination {address.ip}")
    (snat,) = [r for r in _rules(qemu_prefix) if r.startswith(f"-A {qemu_prefix}-SNAT ")]
    assert f"-s {address.ip}/32 ! -d {network.subnets.get().cidr} " in snat
    assert snat.endswith(f"-j SNAT --to-source {eip.ip}")
    eip.refresh_from_db()
    assert (eip.applied, eip.applied_to) == (True, endpoint.name)
    assert networking.forwarding_apply(eip_id=eip.pk) == {"added": [], "changed": [], "removed": [], "errors": []}

    # Drift: someone deletes our DNAT of the whole address and leaves a rule of a deleted forward.
    fw = HostFirewall(qemu_prefix)
    line = dnat[1].split(" ", 2)[2]
    subprocess.run(["iptables", "-w", "5", "-t", "nat", "-D", f"{qemu_prefix}-DNAT", *_split(line)], check=True)
    stale = ForwardSpec(key="eip-999999-pf-1", public_ip="198.51.100.14", private_ip=address.ip, bridge="lo")
    fw.apply(stale)
    assert "eip-999999-pf-1" in set(fw.keys())

    report = networking.forwarding_sync()
    assert report["changed"] == 1 and report["removed"] == 1 and report["errors"] == []
    assert "eip-999999-pf-1" not in set(fw.keys())
    assert _dnat(qemu_prefix) == dnat
    assert networking.forwarding_sync() == {"added": 0, "changed": 0, "removed": 0, "errors": []}

    # Unbinding takes the 1:1 rules away and leaves the forward.
    services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=None)
    networking.forwarding_apply(eip_id=eip.pk)
    assert fw.keys() == {networking.forward_key(eip.pk, PortForward.objects.get().pk)}
    assert not [r for r in _rules(qemu_prefix) if r.startswith(f"-A {qemu_prefix}-SNAT ")]


def _split(line: str) -> list[str]:
    import shlex

    return shlex.split(line)


@pytest.mark.django_db(transaction=True)
def test_forwards_follow_the_desktop_to_another_host_and_leave_with_it(scenario, qemu_prefix):
    """Two endpoints on the one daemon stand for two hosts: each has its own network and chains."""
    network, a, desktop, address, eip = _setup(scenario, qemu_prefix, prefix=f"{qemu_prefix}a")
    forward = services.port_forward_create(
        actor=scenario.tenant_admin, eip=eip, address=address, public_port=3389, private_port=3389
    )
    networking.forwarding_apply(eip_id=eip.pk)
    assert len(_dnat(f"{qemu_prefix}a")) == 1

    # Host A's bridge goes down with it (one subnet cannot be live on two bridges of one machine).
    name_a = networking.libvirt_network_name(network, a)
    subprocess.run(["virsh", "-c", URI, "net-destroy", name_a], capture_output=True, check=True)
    b = endpoint_make(scenario, name=f"{qemu_prefix}b-ep", url=URI, prefix=f"{qemu_prefix}b")
    Desktop.objects.filter(pk=desktop.pk).update(endpoint=b)
    desktop.refresh_from_db()
    report = networking.desktop_bindings_push(desktop=desktop)

    assert report["forwarding"]["added"] == [{"endpoint": b.name, "key": networking.forward_key(eip.pk, forward.pk)}]
    assert _dnat(f"{qemu_prefix}a") == []
    (rule,) = _dnat(f"{qemu_prefix}b")
    assert rule.endswith(f"--to-destination {address.ip}:3389")
    (accept,) = [r for r in _rules(f"{qemu_prefix}b") if r.startswith(f"-A {qemu_prefix}b-FWD ")]
    assert f"-o {networking.bridge_name(network, b)} " in accept
    forward.refresh_from_db()
    assert forward.applied_to == b.name

    # The desktop is deleted: its NIC is released and the forward no longer lands anywhere.
    Desktop.objects.filter(pk=desktop.pk).update(state=Desktop.State.DELETED)
    networking.desktop_bindings_release(desktop=desktop)
    assert _dnat(f"{qemu_prefix}b") == []
    forward.refresh_from_db()
    assert (forward.applied, forward.apply_note) == (False, "the target NIC was released")


@pytest.mark.django_db
def test_a_remote_endpoint_is_refused_clearly_and_the_row_says_why(scenario, qemu_prefix):
    network = tenant_network(scenario, cidr="10.231.77.0/24")
    # Registered as a test endpoint, then pointed at a compute node the portal reaches over SSH.
    remote = endpoint_make(scenario, name=f"{qemu_prefix}-far", prefix="x")
    remote.url = "qemu+ssh://node7.invalid/system"
    remote.save(update_fields=["url"])
    with pytest.raises(DriverError) as caught:
        driver_for(remote).forward_keys()
    assert caught.value.permanent and caught.value.code == ErrorCode.UNSUPPORTED
    assert "only be applied on the portal's own host" in caught.value.message

    desktop = desktop_row(scenario.tenant_a, remote)
    (address,) = networking.desktop_nics_allocate(desktop=desktop, network=network)
    pool = PublicPool.objects.create(name="far", cidr="198.51.100.16/28")
    eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    report = networking.forwarding_apply(eip_id=eip.pk)
    assert report["errors"] and "node7.invalid" in report["errors"][0]
    eip = ElasticIP.objects.get(pk=eip.pk)
    assert not eip.applied and "only be applied on the portal's own host" in eip.apply_note

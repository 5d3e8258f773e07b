"""The HA drill on real hosts (a testbed of its own: hosts are killed): a host loses libvirtd, QEMU and every
other process; HA sees it silent, fences it through its IPMI BMC (the simulator of tests/harness/bmc.py) and
starts its desktops on the other hosts with the same MAC, and the same IP in the new host's DHCP. A BMC that
will not cut the power means no restart; two hosts lost at once move to the third; a desktop too large for
what is left is listed with the reason."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from contextlib import ExitStack

import libvirt
import pytest
from django.test import Client
from django.utils import timezone

from audit.actions import Action
from audit.models import AuditEvent
from compute import services
from compute.drivers import ipmi
from compute.ha import services as ha_services
from compute.ha.round import ha_round
from compute.hypervisor import drivers_close_all
from compute.models import Cluster, ClusterHa, Desktop, HaIncident, HaState, Host, Volume
from network import services as network_services
from network.models import Address
from tests.harness.bmc import bmc_for
from tests.harness.guest import guest_address, guest_ping, wait_for_guest
from tests.harness.testbed import bed_config, bring_down, bring_up
from tests.testbed.hosts import add_host

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed]

# A testbed of its own (hosts are killed here), beside the session's and other worktrees' (10.213.30-49).
HA_BED = {
    "TESTBED_PREFIX": "t4ha",
    "TESTBED_HOSTS": "a1:east a2:east a3:east",
    "TESTBED_MGMT_NET": "10.213.64",
    "TESTBED_DATA_NET": "10.213.65",
}


@pytest.fixture(scope="module")
def habed():
    config = bed_config(**HA_BED)
    bring_down(config)  # what an interrupted run left
    bed = bring_up(config)
    yield bed
    bring_down(config)


@pytest.fixture
def refusing() -> tuple[str, ...]:
    """Hosts whose BMC answers but will not cut the power (a test parametrizes it)."""
    return ()


@pytest.fixture
def cluster_on(habed, scenario, eager, refusing):
    """Every host added (shared storage, its BMC simulator), a golden image and a flavor; up again afterwards."""
    bring_up(habed.config)  # hosts a previous test lost come back
    for host in habed:
        _sweep(host)  # what an interrupted run left
    uid = uuid.uuid4().hex[:6]
    pool, golden = f"hapool-{uid}", f"golden-{uid}.qcow2"
    area = habed.shared_area(pool)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(area.dir / golden), "64M"], check=True)
    for host in habed:
        conn = host.connect()
        conn.storagePoolCreateXML(area.pool_xml(pool), 0)
        conn.close()
        add_host(host, shared_storage_pool=pool)
    with ExitStack() as stack:
        bmcs = {}
        for host in habed:
            bmc = stack.enter_context(bmc_for(host, refuse_off=host.name in refusing))
            bmcs[host.name] = bmc
            ha_services.host_bmc_set(
                actor=scenario.sysadmin,
                host=Host.objects.get(name=host.name),
                address=bmc.address,
                port=bmc.port,
                username=bmc.username,
                password=bmc.password,
            )
        image = services.image_create(actor=scenario.sysadmin, name="Debian", os_type="linux")
        version = services.image_version_register(
            actor=scenario.sysadmin,
            image=image,
            endpoint=Host.objects.get(name="a1").endpoint,
            pool=pool,
            volume=golden,
            size_bytes=64 * 1024**2,
        )
        flavor = services.flavor_create(actor=scenario.sysadmin, name="ha", vcpus=1, memory_mib=64, disk_gib=1)
        network = network_services.network_create(
            actor=scenario.sysadmin, tenant=scenario.tenant_a, name="lab", cidr="10.231.77.0/24"
        )
        try:
            yield {"version": version, "flavor": flavor, "network": network, "bmcs": bmcs, "pool": pool, "area": area}
        finally:
            drivers_close_all()
            bring_up(habed.config)
            for host in habed:
                _sweep(host)
            area.remove()


def _sweep(host) -> None:
    """Everything the test made on the host: domains, networks, filters, the pool (the next test makes its own)."""
    conn = host.connect()
    try:
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
        for net in conn.listAllNetworks(0):
            with contextlib.suppress(libvirt.libvirtError):
                net.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                net.undefine()
        for flt in conn.listAllNWFilters(0):
            if flt.name().startswith("cc-"):
                with contextlib.suppress(libvirt.libvirtError):
                    flt.undefine()
        for pool in conn.listAllStoragePools(0):
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
    finally:
        conn.close()


def _desktops_on(scenario, env, host: str, count: int) -> list[Desktop]:
    endpoint = Host.objects.get(name=host).endpoint
    made = [
        services.desktop_create(
            actor=scenario.sysadmin,
            tenant=scenario.tenant_a,
            image_version=env["version"],
            flavor=env["flavor"],
            owner=scenario.student,
            endpoint=endpoint,
            name=f"ha-{host}-{i}",
        )
        for i in range(count)
    ]
    for desktop in made:
        desktop.refresh_from_db()
        assert desktop.state == Desktop.State.RUNNING and desktop.host.name == host, desktop.error_reason
        assert desktop.mac and desktop.guest_ip
    return made


def _rounds_until(predicate, *, timeout: float) -> float:
    """Run HA rounds (as beat does, every second here) until ``predicate()``; seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        ha_round()
        if predicate():
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"not reached in {timeout} s: {list(HaIncident.objects.values())}")


def _runs_as_itself(bed, desktop: Desktop) -> None:
    """Active on its (new) host's own libvirtd with its MAC, and that host's DHCP gives its MAC its IP."""
    conn = bed[desktop.host.name].connect()
    try:
        dom = conn.lookupByName(desktop.vm_name)
        assert dom.isActive()
        assert f"<mac address='{desktop.mac}'/>" in dom.XMLDesc(0)
        address = Address.objects.get(desktop_id=desktop.pk)
        assert (address.mac, address.ip, address.pushed_to) == (desktop.mac, desktop.guest_ip, desktop.endpoint.name)
        nets = [n.XMLDesc(0) for n in conn.listAllNetworks(0)]
        assert any(f"mac='{desktop.mac}'" in xml and f"ip='{desktop.guest_ip}'" in xml for xml in nets)
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_the_ha_drill_a_lost_host_is_fenced_and_its_desktops_run_elsewhere_with_their_mac_and_ip(
    habed, scenario, cluster_on
):
    desktops = _desktops_on(scenario, cluster_on, "a2", 2)
    before = {d.pk: (d.mac, d.guest_ip) for d in desktops}
    disk = services.volume_attach(actor=scenario.sysadmin, desktop=desktops[0], size_gib=1)
    disk.refresh_from_db()
    assert disk.state == Volume.State.ATTACHED, disk.last_error

    ha_round()  # beat's rounds run all along: every host was just seen
    failed_at = timezone.now()
    habed["a2"].lose()  # libvirtd, QEMU, dnsmasq: every process of the host
    everything_after = _rounds_until(lambda: not Desktop.objects.filter(host__name="a2").exists(), timeout=75)

    incident = HaIncident.objects.get(host__name="a2")
    fenced_after = (incident.fenced_at - failed_at).total_seconds()  # when the BMC said off
    assert fenced_after <= 30 and everything_after <= 60, (fenced_after, everything_after)
    bmc = cluster_on["bmcs"]["a2"]
    assert ipmi.power_state(ipmi.BmcAccess(bmc.address, bmc.port, bmc.username, bmc.password)) == "off"
    for desktop in Desktop.objects.filter(pk__in=before).select_related("host", "endpoint"):
        assert desktop.host.name in {"a1", "a3"} and desktop.state == Desktop.State.RUNNING
        assert (desktop.mac, desktop.guest_ip) == before[desktop.pk]
        _runs_as_itself(habed, desktop)
    # Its data disk is attached again there, and its NIC keeps its filter (security group, anti-spoofing).
    moved = Desktop.objects.select_related("host").get(pk=desktops[0].pk)
    conn = habed[moved.host.name].connect()
    try:
        xml = conn.lookupByName(moved.vm_name).XMLDesc(0)
    finally:
        conn.close()
    assert disk.volume_name in xml and "<filterref filter=" in xml
    assert Volume.objects.get(pk=disk.pk).endpoint_id == moved.endpoint_id
    incident = HaIncident.objects.get(host__name="a2")
    assert incident.outcome == HaIncident.Outcome.RESTARTED and incident.unplaced == []
    assert sorted(r["desktop"] for r in incident.restarted) == sorted(before)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {Action.HA_HOST_SUSPECT, Action.HA_HOST_FENCED, Action.HA_DESKTOP_RESTARTED} <= actions

    # The host comes back (power on): it stays fenced, takes no desktop, until an admin clears it.
    bring_up(habed.config)
    ha_round()
    assert Host.objects.get(name="a2").ha_state == HaState.FENCED
    conn = habed["a2"].connect()
    try:
        stale = {d.name() for d in conn.listAllDomains(0)} & {d.vm_name for d in desktops}
        assert stale and not any(conn.lookupByName(name).isActive() for name in stale)  # defined, shut off
        ha_services.host_ha_clear(actor=scenario.sysadmin, host=Host.objects.get(name="a2"))
        ha_round()
        assert Host.objects.get(name="a2").ha_state == HaState.OK
        # Cleared, it no longer defines the desktops that run elsewhere: nobody can start a second copy.
        assert {d.name() for d in conn.listAllDomains(0)} & stale == set()
    finally:
        conn.close()


@pytest.mark.parametrize("refusing", [("a2",)])
@pytest.mark.django_db(transaction=True)
def test_a_host_whose_bmc_will_not_cut_the_power_is_not_fenced_and_nothing_restarts(
    habed, scenario, cluster_on, settings
):
    settings.SECOND_FACTOR_REQUIRED = False  # the page behind audit's second-factor middleware is what is checked
    env = cluster_on
    ClusterHa.objects.create(cluster=Cluster.objects.get(name="east-general"), detection_seconds=5)
    (desktop,) = _desktops_on(scenario, env, "a2", 1)

    habed["a2"].lose()
    _rounds_until(lambda: Host.objects.get(name="a2").ha_state == HaState.FENCE_FAILED, timeout=30)
    for _ in range(3):
        ha_round()
        time.sleep(1)

    desktop.refresh_from_db()
    assert desktop.host.name == "a2"
    for name in ("a1", "a3"):
        conn = habed[name].connect()
        try:
            assert desktop.vm_name not in [d.name() for d in conn.listAllDomains(0)]
        finally:
            conn.close()
    assert HaIncident.objects.get(host__name="a2").outcome == HaIncident.Outcome.FENCE_FAILED
    client = Client()
    client.force_login(scenario.sysadmin)
    page = client.get(f"/compute/admin/hosts/{desktop.host_id}/").content.decode()
    assert "主机 a2 无法隔离：桌面未重启" in page

    # It comes back while HA could not fence it: it answers, but stays out until an admin clears it.
    bring_up(habed.config)
    ha_round()
    assert Host.objects.get(name="a2").ha_state == HaState.FENCE_FAILED
    client.post(f"/compute/admin/hosts/{desktop.host_id}/ha-clear/", {"confirm": "on"})
    ha_round()
    assert Host.objects.get(name="a2").ha_state == HaState.OK
    assert Desktop.objects.get(pk=desktop.pk).host.name == "a2"


@pytest.mark.django_db(transaction=True)
def test_two_hosts_lost_at_once_move_to_the_third_and_what_does_not_fit_is_listed_with_the_reason(
    habed, scenario, cluster_on
):
    ClusterHa.objects.create(cluster=Cluster.objects.get(name="east-general"), detection_seconds=5)
    small = _desktops_on(scenario, cluster_on, "a1", 1) + _desktops_on(scenario, cluster_on, "a2", 1)
    (giant,) = _desktops_on(scenario, cluster_on, "a2", 1)
    a3 = Host.objects.get(name="a3")
    Desktop.objects.filter(pk=giant.pk).update(memory_mib=a3.memory_mib * 2)  # more than a3 can ever hold

    habed["a1"].lose()
    habed["a2"].lose()
    _rounds_until(lambda: HaIncident.objects.filter(finished_at__isnull=False).count() == 2, timeout=60)

    for desktop in Desktop.objects.filter(pk__in=[d.pk for d in small]).select_related("host", "endpoint"):
        assert desktop.host.name == "a3"
        _runs_as_itself(habed, desktop)
    incident = HaIncident.objects.get(host__name="a2")
    assert incident.outcome == HaIncident.Outcome.PARTIAL
    (unplaced,) = incident.unplaced
    assert unplaced["desktop"] == giant.pk and "容量" in unplaced["reason"]
    assert Desktop.objects.get(pk=giant.pk).host.name == "a2"
    assert AuditEvent.objects.filter(action=Action.HA_DESKTOP_UNPLACED, object_id=str(giant.pk)).exists()


@pytest.fixture
def spanning(habed, scenario, cluster_on, monkeypatch):
    """cluster_on, its hosts with their data addresses (networks span them over VXLAN), each host's agent's
    network sync run from here inside the host; the guest OS's kernel on the shared storage, an image that
    boots it and a flavor it fits in."""
    from compute.drivers.hostnet import HostNet
    from compute.drivers.hostnet import run as hostnet_run
    from compute.networking import overlay
    from tests.harness.guest import BASE_CMDLINE, GUEST_MIB
    from tests.harness.guest_os import guest_build

    def sync_in_hosts(names, *, connection=None) -> list[str]:
        """What the agents do on their queues, at once: a lost host's sync fails, as its agent is gone."""
        synced = []
        for name in sorted(set(names) & {h.name for h in habed}):
            netns = habed[name].netns
            hostnet = HostNet(runner=lambda argv, netns=netns: hostnet_run(["ip", "netns", "exec", netns, *argv]))
            if not overlay.host_network_sync(host_name=name, hostnet=hostnet)["errors"]:
                synced.append(name)
        return synced

    monkeypatch.setattr(overlay, "hosts_sync_send", sync_in_hosts)
    for host in habed:
        services.host_data_address_set(actor=scenario.sysadmin, name=host.name, data_address=host.data_address)
    kernel, initrd = guest_build()
    for path in (kernel, initrd):
        shutil.copyfile(path, cluster_on["area"].dir / path.name)

    def image(cmdline: str = ""):
        made = services.image_create(
            actor=scenario.sysadmin,
            name=f"guest {cmdline}".strip()[:100],
            os_type="linux",
            kernel_path=f"{cluster_on['area'].path}/{kernel.name}",
            initrd_path=f"{cluster_on['area'].path}/{initrd.name}",
            kernel_cmdline=f"{BASE_CMDLINE} {cmdline}".strip(),
        )
        return services.image_version_register(
            actor=scenario.sysadmin,
            image=made,
            endpoint=Host.objects.get(name="a1").endpoint,
            pool=cluster_on["pool"],
            volume=cluster_on["version"].volume,
            size_bytes=64 * 1024**2,
        )

    flavor = services.flavor_create(actor=scenario.sysadmin, name="guest", vcpus=1, memory_mib=GUEST_MIB, disk_gib=1)
    try:
        yield {**cluster_on, "image": image, "flavor": flavor}
    finally:
        bring_up(habed.config)  # the lost host back, to clear its devices too
        for host in habed:
            host.run("sh", "-c", f"for d in $(ip -o link | grep -o '{VXLANS}' | sort -u); do ip link del $d; done")


VXLANS = "ccvx[0-9]*"


def _guest_on(scenario, version, flavor, host: str, name: str) -> Desktop:
    desktop = services.desktop_create(
        actor=scenario.sysadmin,
        tenant=scenario.tenant_a,
        image_version=version,
        flavor=flavor,
        owner=scenario.student,
        endpoint=Host.objects.get(name=host).endpoint,
        name=name,
    )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING and desktop.host.name == host, desktop.error_reason
    return desktop


@pytest.mark.django_db(transaction=True)
def test_a_desktop_pinging_another_keeps_its_ip_when_ha_restarts_it_on_another_host(habed, scenario, spanning):
    """Issue 17's acceptance: the guests are the real tiny OS; the IP is what the guest takes by DHCP again."""
    ClusterHa.objects.create(cluster=Cluster.objects.get(name="east-general"), detection_seconds=5)
    network_services.rule_add(  # the guest's HTTP, through which the peer is asked to ping
        actor=scenario.sysadmin,
        group=network_services.security_group_default_ensure(tenant=scenario.tenant_a),
        direction="in",
        protocol="tcp",
        port_min=80,
        port_max=80,
        remote_cidr="0.0.0.0/0",
    )
    peer = _guest_on(scenario, spanning["image"](), spanning["flavor"], "a1", "peer")
    pinging = _guest_on(scenario, spanning["image"](f"cc.ping={peer.guest_ip}"), spanning["flavor"], "a2", "pinger")
    seen = guest_address(pinging, testbed=habed)
    assert (seen["ip"], seen["mac"]) == (pinging.guest_ip, pinging.mac)
    wait_for_guest(pinging, rf"CCGUEST ping {peer.guest_ip} ok", testbed=habed)  # a2 → a1 over the VXLAN

    ha_round()
    habed["a2"].lose()
    _rounds_until(lambda: not Desktop.objects.filter(pk=pinging.pk, host__name="a2").exists(), timeout=75)

    pinging.refresh_from_db()
    assert pinging.host.name in {"a1", "a3"} and pinging.state == Desktop.State.RUNNING
    seen_again = guest_address(pinging, testbed=habed)  # its console since the restart, on its new host
    assert (seen_again["ip"], seen_again["mac"]) == (seen["ip"], seen["mac"])
    wait_for_guest(pinging, rf"CCGUEST ping {peer.guest_ip} ok", testbed=habed)
    wait_for_guest(peer, r"CCGUEST up port=80", testbed=habed)
    assert guest_ping(peer, pinging.guest_ip, testbed=habed)  # and the peer reaches it at that IP

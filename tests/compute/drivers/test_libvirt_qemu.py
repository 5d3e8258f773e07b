"""The libvirt driver against the real libvirtd + QEMU (TCG guests with no OS, 128 MiB each).

LIBVIRT_QEMU_URI (default qemu:///system) names the daemon; without it these tests fail.
"""

from __future__ import annotations

import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest

from compute.drivers import (
    DhcpHost,
    DiskSpec,
    DriverError,
    ErrorCode,
    FirewallRule,
    GpuSpec,
    NetworkSpec,
    NicSpec,
    NwFilterSpec,
    PowerState,
    VMSpec,
)

pytestmark = pytest.mark.libvirt


def spec_for(pool, name: str, **changes) -> VMSpec:
    base = VMSpec(
        name=name,
        vcpus=1,
        memory_mib=128,
        image_pool=pool.name,
        image_volume=pool.golden,
        domain_type="qemu",
        nics=(NicSpec("default"),),
    )
    return replace(base, **changes)


def inactive_xml(conn: libvirt.virConnect, name: str) -> ET.Element:
    return ET.fromstring(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def rfb_banner(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        return sock.recv(12)


def test_desktop_lifecycle(qemu_driver, qemu_conn, qemu_pool, cleanup, uid):
    name = f"cc-test-{uid}"
    cleanup(lambda: qemu_driver.delete_vm(name))

    vm = qemu_driver.create_vm(spec_for(qemu_pool, name), start=True)
    assert vm.power_state == PowerState.RUNNING
    system = vm.disks[0]
    assert system.volume == f"{name}-system.qcow2" and system.pool == qemu_pool.name
    info = qemu_pool.qemu_img_info(system.volume)
    assert info["format"] == "qcow2"
    assert Path(info["full-backing-filename"]) == qemu_pool.path / qemu_pool.golden
    assert vm.vnc_host == "127.0.0.1" and vm.vnc_port and vm.vnc_port >= 5900
    console = qemu_driver.console_address(name)
    assert (console.host, console.port) == ("127.0.0.1", vm.vnc_port)
    assert rfb_banner(console.host, console.port).startswith(b"RFB ")
    assert vm.nics[0].network == "default" and vm.nics[0].mac.startswith("52:54:00")

    qemu_driver.shutdown(name, force=True)
    stopped = qemu_driver.get_vm(name)
    assert stopped.power_state == PowerState.STOPPED and stopped.vnc_port is None
    with pytest.raises(DriverError) as err:
        qemu_driver.console_address(name)
    assert err.value.code == ErrorCode.INVALID_STATE
    qemu_driver.start(name)
    assert qemu_driver.get_vm(name).power_state == PowerState.RUNNING

    snap = qemu_driver.snapshot_create(name, "clean", "before the lab")
    assert snap.power_state == PowerState.RUNNING
    assert "clean" in [s["name"] for s in qemu_pool.qemu_img_info(system.volume).get("snapshots", [])]
    qemu_driver.snapshot_revert(name, "clean")
    assert qemu_driver.get_vm(name).power_state == PowerState.RUNNING
    qemu_driver.snapshot_delete(name, "clean")
    assert qemu_driver.snapshot_list(name) == []

    disk = qemu_driver.attach_disk(name, 1)
    assert disk.target == "vdb" and disk.size_bytes == 1024**3
    assert disk.volume in qemu_pool.volumes()
    assert "vdb" in [d.target for d in qemu_driver.get_vm(name).disks]
    assert inactive_xml(qemu_conn, name).find("devices/disk/target[@dev='vdb']") is not None
    started = time.monotonic()
    qemu_driver.detach_disk(name, "vdb")
    # A guest without an OS never acknowledges the unplug: the driver must not wait for it.
    assert time.monotonic() - started < 3
    assert inactive_xml(qemu_conn, name).find("devices/disk/target[@dev='vdb']") is None
    assert disk.volume not in qemu_pool.volumes()

    qemu_driver.shutdown(name, force=True)
    qemu_driver.reset_system_disk(name)
    new_system = qemu_driver.get_vm(name).disks[0]
    assert new_system.volume != system.volume
    assert system.volume not in qemu_pool.volumes()
    new_info = qemu_pool.qemu_img_info(new_system.volume)
    assert Path(new_info["full-backing-filename"]) == qemu_pool.path / qemu_pool.golden
    qemu_driver.start(name)

    qemu_driver.delete_vm(name)
    with pytest.raises(DriverError) as err:
        qemu_driver.get_vm(name)
    assert err.value.permanent and err.value.code == ErrorCode.NOT_FOUND
    assert qemu_pool.volumes() == {qemu_pool.golden}


def test_data_disks_from_the_spec_and_list_vms(qemu_driver, qemu_pool, cleanup, uid):
    name = f"cc-test-{uid}"
    cleanup(lambda: qemu_driver.delete_vm(name))
    qemu_driver.create_vm(spec_for(qemu_pool, name, data_disks=(DiskSpec(1), DiskSpec(2))), start=False)
    listed = {vm.name: vm for vm in qemu_driver.list_vms()}
    assert [(d.target, d.size_bytes) for d in listed[name].disks] == [
        ("vda", 64 * 1024**2),
        ("vdb", 1024**3),
        ("vdc", 2 * 1024**3),
    ]
    qemu_driver.delete_vm(name)
    assert qemu_pool.volumes() == {qemu_pool.golden}


def test_image_import_checks_the_file_and_flatten_publishes_a_standalone_copy(
    qemu_driver, qemu_pool, cleanup, uid, tmp_path
):
    source = tmp_path / "upload.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(source), "16M"], check=True)
    imported = qemu_driver.image_import(qemu_pool.name, f"golden-{uid}.qcow2", str(source))
    cleanup(lambda: qemu_driver.volume_delete(qemu_pool.name, imported.name))
    assert (imported.format, imported.capacity_bytes, imported.backing) == ("qcow2", 16 * 1024**2, "")
    assert qemu_pool.qemu_img_info(imported.name)["virtual-size"] == 16 * 1024**2
    with pytest.raises(DriverError) as err:
        qemu_driver.image_import(qemu_pool.name, imported.name, str(source))
    assert err.value.code == ErrorCode.EXISTS

    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"QFI\xfb" + b"\0" * 60)  # a qcow2 magic with a broken header
    with pytest.raises(DriverError) as err:
        qemu_driver.image_import(qemu_pool.name, f"junk-{uid}.qcow2", str(junk))
    assert err.value.permanent and err.value.code == ErrorCode.BAD_IMAGE
    assert f"junk-{uid}.qcow2" not in qemu_pool.volumes()

    name = f"cc-test-{uid}"
    cleanup(lambda: qemu_driver.delete_vm(name))
    overlay = qemu_driver.create_vm(spec_for(qemu_pool, name), start=False).disks[0].volume
    published = qemu_driver.image_flatten(qemu_pool.name, overlay, f"published-{uid}.qcow2")
    cleanup(lambda: qemu_driver.volume_delete(qemu_pool.name, published.name))
    info = qemu_pool.qemu_img_info(published.name)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert info["virtual-size"] == 64 * 1024**2


def test_nat_network_dhcp_hosts_reach_dnsmasq(qemu_driver, qemu_conn, cleanup, uid):
    net = f"cc-net-{uid}"
    octet = 100 + int(uid, 16) % 100
    cleanup(lambda: qemu_driver.network_delete(net))
    qemu_driver.network_ensure(
        NetworkSpec(
            net,
            cidr=f"10.{octet}.7.0/24",
            dhcp_start=f"10.{octet}.7.100",
            dhcp_end=f"10.{octet}.7.200",
            dhcp_hosts=(DhcpHost("52:54:00:7e:00:01", f"10.{octet}.7.11", "pc11"),),
        )
    )
    network = qemu_conn.networkLookupByName(net)
    assert network.isActive() and network.autostart()
    hostsfile = Path(f"/var/lib/libvirt/dnsmasq/{net}.hostsfile")

    qemu_driver.dhcp_host_set(net, DhcpHost("52:54:00:7e:00:02", f"10.{octet}.7.12"))
    assert qemu_driver.dhcp_hosts(net) == [
        DhcpHost("52:54:00:7e:00:01", f"10.{octet}.7.11", "pc11"),
        DhcpHost("52:54:00:7e:00:02", f"10.{octet}.7.12"),
    ]
    persistent = ET.fromstring(network.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE))
    assert len(persistent.findall("ip/dhcp/host")) == 2
    lines = hostsfile.read_text().splitlines()
    assert f"52:54:00:7e:00:01,10.{octet}.7.11,pc11" in lines
    assert f"52:54:00:7e:00:02,10.{octet}.7.12" in lines

    qemu_driver.dhcp_host_set(net, DhcpHost("52:54:00:7e:00:02", f"10.{octet}.7.22"))
    assert f"52:54:00:7e:00:02,10.{octet}.7.22" in hostsfile.read_text().splitlines()
    qemu_driver.dhcp_host_remove(net, "52:54:00:7e:00:01")
    assert "52:54:00:7e:00:01" not in hostsfile.read_text()
    assert [h.mac for h in qemu_driver.dhcp_hosts(net)] == ["52:54:00:7e:00:02"]

    qemu_driver.network_delete(net)
    with pytest.raises(libvirt.libvirtError):
        qemu_conn.networkLookupByName(net)


def iptables_rules() -> list[str]:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout.splitlines()


def test_nwfilter_lands_in_iptables_and_updates_live(qemu_driver, qemu_conn, qemu_pool, cleanup, uid):
    flt, name = f"cc-sg-{uid}", f"cc-test-{uid}"
    port = 20000 + int(uid, 16) % 20000
    cleanup(lambda: qemu_driver.nwfilter_delete(flt))
    cleanup(lambda: qemu_driver.delete_vm(name))

    uuid = qemu_driver.nwfilter_define(
        NwFilterSpec(flt, rules=(FirewallRule("in", "tcp", port, port, remote_cidr="10.0.0.0/8"),))
    )
    nic = NicSpec("default", nwfilter=flt, filter_params={"CAMPUS": "1"})
    qemu_driver.create_vm(spec_for(qemu_pool, name, nics=(nic,)), start=True)
    accepted = [r for r in iptables_rules() if f"--dport {port}" in r and "-j ACCEPT" in r]
    assert accepted and all("-s 10.0.0.0/8" in r for r in accepted), accepted

    assert (
        qemu_driver.nwfilter_define(NwFilterSpec(flt, rules=(FirewallRule("in", "tcp", port + 1, port + 1),))) == uuid
    )
    rules = iptables_rules()
    assert not [r for r in rules if f"--dport {port} " in r or r.endswith(f"--dport {port}")]
    assert [r for r in rules if f"--dport {port + 1}" in r and "-j ACCEPT" in r]

    with pytest.raises(DriverError) as err:
        qemu_driver.nwfilter_delete(flt)  # still referenced by the running VM
    assert err.value.permanent and err.value.code == ErrorCode.INVALID_STATE
    qemu_driver.delete_vm(name)
    qemu_driver.nwfilter_delete(flt)
    assert not [r for r in iptables_rules() if f"--dport {port + 1}" in r]
    qemu_driver.nwfilter_delete(flt)  # already gone


@pytest.mark.parametrize(
    "gpu",
    [
        GpuSpec("passthrough", pci_addresses=("0000:3b:00.0",)),
        GpuSpec("vgpu", mdev_uuid="c2177883-f1bb-47f0-914d-32a22e3a8804", mdev_type="nvidia-63"),
    ],
    ids=["passthrough", "vgpu"],
)
def test_gpu_specs_are_defined_as_hostdevs_without_starting(qemu_driver, qemu_conn, qemu_pool, cleanup, uid, gpu):
    name = f"cc-test-{uid}"
    cleanup(lambda: qemu_driver.delete_vm(name))
    vm = qemu_driver.create_vm(spec_for(qemu_pool, name, gpu=gpu), start=False)
    assert vm.gpu == GpuSpec(gpu.mode, pci_addresses=gpu.pci_addresses, mdev_uuid=gpu.mdev_uuid)
    hostdev = inactive_xml(qemu_conn, name).find("devices/hostdev")
    if gpu.mode == "passthrough":
        assert (hostdev.get("type"), hostdev.get("managed")) == ("pci", "yes")
        assert hostdev.find("source/address").get("bus") == "0x3b"
    else:
        assert (hostdev.get("type"), hostdev.get("model")) == ("mdev", "vfio-pci")
        assert hostdev.find("source/address").get("uuid") == gpu.mdev_uuid

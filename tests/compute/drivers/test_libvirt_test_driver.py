"""The libvirt driver against libvirt's in-memory test driver (test:///default): no daemon needed."""

from __future__ import annotations

import subprocess
import threading
import xml.etree.ElementTree as ET
from dataclasses import replace

import libvirt
import pytest

from compute.drivers import (
    DhcpHost,
    DiskSpec,
    DriverError,
    ErrorCode,
    FirewallRule,
    GpuSpec,
    HypervisorDriver,
    NetworkSpec,
    NicSpec,
    NwFilterSpec,
    PowerState,
    VMSpec,
    open_driver,
)
from compute.drivers import xml as lx
from compute.drivers.libvirt import LibvirtDriver, check_image

POOL = "default-pool"


def spec_for(name: str, golden: str, **changes) -> VMSpec:
    base = VMSpec(
        name=name,
        vcpus=2,
        memory_mib=256,
        image_pool=POOL,
        image_volume=golden,
        domain_type="qemu",
        nics=(NicSpec("default", mac="52:54:00:12:34:56"),),
    )
    return replace(base, **changes)


# ---- XML building ------------------------------------------------------------------------


def test_domain_xml_has_virtio_disks_nic_filterref_and_loopback_vnc():
    spec = VMSpec(
        name="desk-1",
        vcpus=2,
        memory_mib=2048,
        image_pool="images",
        image_volume="ubuntu.qcow2",
        domain_type="kvm",
        nics=(NicSpec("campus", mac="52:54:00:AA:BB:CC", nwfilter="sg-1", filter_params={"IP": "10.0.0.5"}),),
    )
    root = ET.fromstring(
        lx.domain_xml(spec, system_pool="images", system_volume="desk-1-system.qcow2", data_volumes=[("d", "v")])
    )
    assert root.get("type") == "kvm"
    assert root.findtext("vcpu") == "2"
    assert root.find("memory").text == "2048" and root.find("memory").get("unit") == "MiB"
    disks = root.findall("devices/disk")
    assert [(d.find("source").get("pool"), d.find("source").get("volume")) for d in disks] == [
        ("images", "desk-1-system.qcow2"),
        ("d", "v"),
    ]
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"]
    assert {d.find("target").get("bus") for d in disks} == {"virtio"}
    assert {d.find("driver").get("type") for d in disks} == {"qcow2"}
    iface = root.find("devices/interface")
    assert iface.get("type") == "network"
    assert iface.find("source").get("network") == "campus"
    assert iface.find("mac").get("address") == "52:54:00:aa:bb:cc"
    assert iface.find("model").get("type") == "virtio"
    ref = iface.find("filterref")
    assert ref.get("filter") == "sg-1"
    assert ref.find("parameter").attrib == {"name": "IP", "value": "10.0.0.5"}
    graphics = dict(root.find("devices/graphics").attrib)
    # No listen address (the host's qemu.conf decides: its management address), and always a password.
    assert len(graphics.pop("passwd")) == 8
    assert graphics == {"type": "vnc", "port": "-1", "autoport": "yes"}
    assert root.find("cpu").get("mode") == "host-passthrough"


def test_qemu_domain_type_has_no_host_cpu():
    spec = VMSpec(name="t", vcpus=1, memory_mib=128, image_pool="p", image_volume="g", domain_type="qemu")
    root = ET.fromstring(lx.domain_xml(spec, system_pool="p", system_volume="t-system.qcow2"))
    assert root.get("type") == "qemu"
    assert root.find("cpu") is None


def test_gpu_passthrough_and_vgpu_become_hostdevs():
    passthrough = VMSpec(
        name="g1", vcpus=4, memory_mib=4096, gpu=GpuSpec("passthrough", pci_addresses=("0000:3b:00.0", "3b:00.1"))
    )
    root = ET.fromstring(lx.domain_xml(passthrough, system_pool="p", system_volume="v"))
    hostdevs = root.findall("devices/hostdev")
    assert [h.attrib for h in hostdevs] == [{"mode": "subsystem", "type": "pci", "managed": "yes"}] * 2
    assert hostdevs[1].find("source/address").attrib == {
        "domain": "0x0000",
        "bus": "0x3b",
        "slot": "0x00",
        "function": "0x1",
    }
    assert lx.parse_gpu(root) == GpuSpec("passthrough", pci_addresses=("0000:3b:00.0", "0000:3b:00.1"))

    vgpu = VMSpec(
        name="g2",
        vcpus=4,
        memory_mib=4096,
        gpu=GpuSpec("vgpu", mdev_uuid="c2177883-f1bb-47f0-914d-32a22e3a8804", mdev_type="nvidia-63"),
    )
    root = ET.fromstring(lx.domain_xml(vgpu, system_pool="p", system_volume="v"))
    hostdev = root.find("devices/hostdev")
    assert hostdev.get("type") == "mdev" and hostdev.get("model") == "vfio-pci"
    assert hostdev.find("source/address").get("uuid") == "c2177883-f1bb-47f0-914d-32a22e3a8804"


def test_bad_specs_are_permanent_invalid_spec_errors():
    for spec in (
        VMSpec(name="x", vcpus=1, memory_mib=128, domain_type="xen"),
        VMSpec(name="x", vcpus=0, memory_mib=128),
        VMSpec(name="x", vcpus=1, memory_mib=128, gpu=GpuSpec("passthrough", pci_addresses=("zz:top",))),
        VMSpec(name="x", vcpus=1, memory_mib=128, gpu=GpuSpec("vgpu")),
    ):
        with pytest.raises(DriverError) as err:
            lx.domain_xml(spec, system_pool="p", system_volume="v")
        assert err.value.permanent and err.value.code == ErrorCode.INVALID_SPEC
    with pytest.raises(ValueError):
        GpuSpec("sli")


def test_nwfilter_xml_maps_rules_and_drops_the_rest():
    spec = NwFilterSpec(
        "sg-web",
        uuid="5e1a7f3c-0000-4000-8000-000000000001",
        rules=(
            FirewallRule("in", "tcp", 22, 22, remote_cidr="10.1.0.0/16"),
            FirewallRule("in", "tcp", 8000, 8100),
            FirewallRule("out", "all"),
            FirewallRule("in", "icmp", action="drop", priority=400),
        ),
    )
    root = ET.fromstring(lx.nwfilter_xml(spec))
    assert root.findtext("uuid") == spec.uuid
    rules = root.findall("rule")
    assert rules[0].attrib == {"action": "accept", "direction": "in", "priority": "500"}
    assert rules[0].find("tcp").attrib == {
        "srcipaddr": "10.1.0.0",
        "srcipmask": "16",
        "dstportstart": "22",
        "dstportend": "22",
    }
    assert rules[1].find("tcp").get("dstportend") == "8100"
    assert rules[2].find("all") is not None and rules[2].get("direction") == "out"
    assert rules[3].get("action") == "drop" and rules[3].find("icmp") is not None
    last = rules[-1]
    assert last.attrib == {"action": "drop", "direction": "inout", "priority": "1000"}
    with pytest.raises(DriverError):
        lx.nwfilter_xml(NwFilterSpec("bad", rules=(FirewallRule("in", "icmp", 1),)))


def test_network_xml_nat_with_dhcp_range_and_hosts():
    spec = NetworkSpec(
        "lab",
        bridge="virbr-lab",
        cidr="10.30.0.0/24",
        dhcp_start="10.30.0.100",
        dhcp_end="10.30.0.199",
        dhcp_hosts=(DhcpHost("52:54:00:00:00:0A", "10.30.0.10", "pc10"),),
    )
    root = ET.fromstring(lx.network_xml(spec))
    assert root.find("forward").get("mode") == "nat"
    assert root.find("ip").attrib == {"address": "10.30.0.1", "netmask": "255.255.255.0"}
    assert root.find("ip/dhcp/range").attrib == {"start": "10.30.0.100", "end": "10.30.0.199"}
    assert root.find("ip/dhcp/host").attrib == {"mac": "52:54:00:00:00:0a", "ip": "10.30.0.10", "name": "pc10"}
    bridged = ET.fromstring(lx.network_xml(NetworkSpec("campus", forward="bridge", bridge="br0")))
    assert bridged.find("forward").get("mode") == "bridge" and bridged.find("ip") is None
    with pytest.raises(DriverError) as err:
        lx.network_xml(NetworkSpec("x", cidr="10.0.0.0/24", dhcp_start="10.9.9.9"))
    assert err.value.code == ErrorCode.INVALID_SPEC


# ---- lifecycle on test:///default ------------------------------------------------------------


def test_open_driver_picks_the_driver_by_kind():
    driver = open_driver("libvirt", "test:///default")
    assert isinstance(driver, LibvirtDriver) and isinstance(driver, HypervisorDriver)
    assert driver.kind == "libvirt"
    driver.check()
    driver.close()
    with pytest.raises(DriverError) as err:
        open_driver("hyperv", "x")
    assert err.value.permanent


def test_host_info_reports_capacity(test_driver):
    info = test_driver.host_info()
    assert info.cpus > 0 and info.memory_mib > 0
    assert info.hypervisor.startswith("TEST")


def test_create_makes_a_linked_clone_and_defines_the_domain(test_driver, test_conn, test_golden, uid):
    name = f"vm-{uid}"
    vm = test_driver.create_vm(spec_for(name, test_golden, data_disks=(DiskSpec(2),)), start=False)
    assert vm.power_state == PowerState.STOPPED
    assert (vm.vcpus, vm.memory_mib) == (2, 256)
    system, data = vm.disks
    assert (system.target, system.volume) == ("vda", f"{name}-system.qcow2")
    assert system.backing.endswith(test_golden)
    assert data.size_bytes == 2 * 1024**3 and data.backing == ""
    assert vm.nics[0].mac == "52:54:00:12:34:56" and vm.nics[0].network == "default"
    vol = test_conn.storagePoolLookupByName(POOL).storageVolLookupByName(f"{name}-system.qcow2")
    root = ET.fromstring(vol.XMLDesc(0))
    assert root.find("target/format").get("type") == "qcow2"
    assert root.findtext("backingStore/path").endswith(test_golden)


def test_create_is_idempotent_and_refuses_a_different_vm_with_the_name(test_driver, test_golden, uid):
    spec = spec_for(f"vm-{uid}", test_golden)
    first = test_driver.create_vm(spec, start=False)
    again = test_driver.create_vm(spec, start=True)
    assert again.uuid == first.uuid and again.power_state == PowerState.RUNNING
    with pytest.raises(DriverError) as err:
        test_driver.create_vm(spec_for(f"vm-{uid}", test_golden, vcpus=4))
    assert err.value.permanent and err.value.code == ErrorCode.EXISTS


def test_create_with_a_missing_golden_image_leaves_nothing_behind(test_driver, test_conn, uid):
    with pytest.raises(DriverError) as err:
        test_driver.create_vm(spec_for(f"vm-{uid}", "no-such-golden.qcow2"))
    assert err.value.permanent and err.value.code == ErrorCode.NOT_FOUND
    assert not [v for v in test_conn.storagePoolLookupByName(POOL).listVolumes() if uid in v]


def test_power_operations_and_their_state(test_driver, test_golden, uid):
    name = f"vm-{uid}"
    test_driver.create_vm(spec_for(name, test_golden), start=True)
    assert test_driver.get_vm(name).power_state == PowerState.RUNNING
    with pytest.raises(DriverError) as err:
        test_driver.start(name)
    assert err.value.permanent and err.value.code == ErrorCode.INVALID_STATE
    test_driver.suspend(name)
    assert test_driver.get_vm(name).power_state == PowerState.PAUSED
    test_driver.resume(name)
    test_driver.reboot(name)
    test_driver.shutdown(name)
    assert test_driver.get_vm(name).power_state == PowerState.STOPPED
    test_driver.start(name)
    test_driver.shutdown(name, force=True)
    assert test_driver.get_vm(name).power_state == PowerState.STOPPED


def test_list_vms_sees_every_domain(test_driver, test_golden, uid):
    names = {f"vm-{uid}-{i}" for i in range(3)}
    for name in names:
        test_driver.create_vm(spec_for(name, test_golden, nics=()), start=False)
    listed = {vm.name: vm for vm in test_driver.list_vms()}
    assert names <= set(listed)
    assert "test" in listed  # the test driver's own domain, unknown to the portal
    assert all(listed[n].disks[0].size_bytes == 64 * 1024**2 for n in names)


def test_delete_removes_domain_and_its_volumes_but_not_the_golden(test_driver, test_conn, test_golden, uid):
    name = f"vm-{uid}"
    test_driver.create_vm(spec_for(name, test_golden, data_disks=(DiskSpec(1),)), start=True)
    test_driver.snapshot_create(name, "s1")
    test_driver.delete_vm(name)
    pool = test_conn.storagePoolLookupByName(POOL)
    assert [v for v in pool.listVolumes() if uid in v] == [test_golden]
    with pytest.raises(DriverError) as err:
        test_driver.get_vm(name)
    assert err.value.code == ErrorCode.NOT_FOUND
    test_driver.delete_vm(name)  # already gone: nothing to do, no error


def test_snapshots_create_list_revert_delete(test_driver, test_golden, uid):
    name = f"vm-{uid}"
    test_driver.create_vm(spec_for(name, test_golden), start=True)
    first = test_driver.snapshot_create(name, "before-lab", "clean state")
    assert first.current and first.description == "clean state" and first.power_state == PowerState.RUNNING
    test_driver.shutdown(name, force=True)
    test_driver.snapshot_create(name, "after")
    snaps = test_driver.snapshot_list(name)
    assert [s.name for s in snaps] == ["before-lab", "after"]
    assert snaps[1].parent == "before-lab" and snaps[1].current
    with pytest.raises(DriverError) as err:
        test_driver.snapshot_create(name, "after")
    assert err.value.code == ErrorCode.EXISTS
    test_driver.snapshot_revert(name, "before-lab")
    assert test_driver.get_vm(name).power_state == PowerState.RUNNING
    test_driver.snapshot_delete(name, "after")
    assert [s.name for s in test_driver.snapshot_list(name)] == ["before-lab"]
    with pytest.raises(DriverError) as err:
        test_driver.snapshot_revert(name, "after")
    assert err.value.permanent and err.value.code == ErrorCode.NOT_FOUND


def test_reset_system_disk_makes_a_new_overlay_of_the_same_golden(test_driver, test_conn, test_golden, uid):
    name = f"vm-{uid}"
    old = test_driver.create_vm(spec_for(name, test_golden), start=True).disks[0]
    with pytest.raises(DriverError) as err:
        test_driver.reset_system_disk(name)
    assert err.value.code == ErrorCode.INVALID_STATE
    test_driver.shutdown(name, force=True)
    test_driver.reset_system_disk(name)
    new = test_driver.get_vm(name).disks[0]
    assert new.volume != old.volume and new.backing == old.backing
    assert old.volume not in test_conn.storagePoolLookupByName(POOL).listVolumes()


def test_image_flatten_copies_an_overlay_without_backing_file(test_driver, test_golden, uid):
    name = f"vm-{uid}"
    overlay = test_driver.create_vm(spec_for(name, test_golden), start=False).disks[0].volume
    published = test_driver.image_flatten(POOL, overlay, f"published-{uid}.qcow2")
    assert published.backing == "" and published.format == "qcow2"
    assert published.name in {v.name for v in test_driver.volume_list(POOL)}
    test_driver.volume_delete(POOL, published.name)
    assert published.name not in {v.name for v in test_driver.volume_list(POOL)}


def test_networks_and_dhcp_hosts_read_back(test_driver, uid):
    net = f"net-{uid}"
    spec = NetworkSpec(net, cidr="10.44.0.0/24", dhcp_start="10.44.0.100", dhcp_end="10.44.0.200")
    test_driver.network_ensure(spec)
    test_driver.network_ensure(spec)  # already there: kept as it is
    a = DhcpHost("52:54:00:00:44:01", "10.44.0.11", "pc11")
    test_driver.dhcp_host_set(net, a)
    test_driver.dhcp_host_set(net, DhcpHost("52:54:00:00:44:02", "10.44.0.12"))
    assert test_driver.dhcp_hosts(net) == [a, DhcpHost("52:54:00:00:44:02", "10.44.0.12")]
    moved = DhcpHost("52:54:00:00:44:01", "10.44.0.21", "pc11")
    test_driver.dhcp_host_set(net, moved)
    with pytest.raises(DriverError) as err:
        test_driver.dhcp_host_set(net, DhcpHost("52:54:00:00:44:03", "10.44.0.21"))
    assert err.value.code == ErrorCode.EXISTS
    test_driver.dhcp_host_remove(net, "52:54:00:00:44:02")
    test_driver.dhcp_host_remove(net, "52:54:00:00:44:02")  # already gone
    assert test_driver.dhcp_hosts(net) == [moved]
    with pytest.raises(DriverError) as err:
        test_driver.network_ensure(NetworkSpec(net, cidr="10.45.0.0/24"))
    assert err.value.code == ErrorCode.EXISTS
    test_driver.network_delete(net)
    test_driver.network_delete(net)
    with pytest.raises(DriverError) as err:
        test_driver.dhcp_hosts(net)
    assert err.value.code == ErrorCode.NOT_FOUND


def test_what_the_test_driver_cannot_do_is_unsupported_not_a_crash(test_driver, test_golden, uid, tmp_path):
    name = f"vm-{uid}"
    test_driver.create_vm(spec_for(name, test_golden), start=True)
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "8M"], check=True)
    calls = [
        lambda: test_driver.attach_disk(name, 1),
        lambda: test_driver.detach_disk(name, "vdb"),
        lambda: test_driver.console_address(name),
        lambda: test_driver.nwfilter_define(NwFilterSpec(f"sg-{uid}")),
        lambda: test_driver.nwfilter_delete(f"sg-{uid}"),
        lambda: test_driver.image_import(POOL, f"img-{uid}.qcow2", str(disk)),
    ]
    for call in calls:
        with pytest.raises(DriverError) as err:
            call()
        assert err.value.permanent and err.value.code == ErrorCode.UNSUPPORTED, err.value
    assert not [v for v in test_driver.volume_list(POOL) if v.name.startswith((f"{name}-data", f"img-{uid}"))]


def test_image_import_refuses_a_file_that_is_no_disk_image(test_driver, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a disk\n")
    for path in (str(text), str(tmp_path / "missing.qcow2")):
        with pytest.raises(DriverError) as err:
            test_driver.image_import(POOL, "x.qcow2", path)
        assert err.value.permanent and err.value.code == ErrorCode.BAD_IMAGE


def test_a_broken_connection_is_reopened(test_driver, test_golden, uid):
    name = f"vm-{uid}"
    test_driver.create_vm(spec_for(name, test_golden), start=False)
    test_driver._conn.close()  # as if libvirtd had dropped us
    assert test_driver.get_vm(name).name == name


def test_many_threads_share_one_driver(test_driver, test_golden, uid):
    names = [f"vm-{uid}-{i}" for i in range(8)]
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            test_driver.create_vm(spec_for(name, test_golden, nics=()), start=True)
            test_driver.get_vm(name)
            test_driver.list_vms()
            test_driver.delete_vm(name)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not set(names) & {vm.name for vm in test_driver.list_vms()}


def test_libvirt_errors_map_to_permanent_or_transient():
    from compute.drivers.libvirt import map_error

    def fake(code: int, domain: int = 0) -> libvirt.libvirtError:
        exc = libvirt.libvirtError("boom")
        exc.err = (code, domain, "boom", 2, None, None, None, 0, 0)
        return exc

    cases = {
        (libvirt.VIR_ERR_NO_DOMAIN, 0): (True, ErrorCode.NOT_FOUND),
        (libvirt.VIR_ERR_OPERATION_INVALID, 0): (True, ErrorCode.INVALID_STATE),
        (libvirt.VIR_ERR_XML_ERROR, 0): (True, ErrorCode.INVALID_SPEC),
        (libvirt.VIR_ERR_AUTH_FAILED, 0): (True, ErrorCode.AUTH),
        (libvirt.VIR_ERR_NO_SUPPORT, 0): (True, ErrorCode.UNSUPPORTED),
        (libvirt.VIR_ERR_OPERATION_TIMEOUT, 0): (False, ErrorCode.BUSY),
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC): (False, ErrorCode.UNREACHABLE),
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC): (False, ErrorCode.UNREACHABLE),
        # "Failed to apply firewall rules ... RULE_DELETE failed": ebtables-nft meeting another rule change.
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_FIREWALL): (False, ErrorCode.BUSY),
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_NWFILTER): (False, ErrorCode.BUSY),
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU): (True, ErrorCode.ERROR),
    }
    for (code, domain), (permanent, expected) in cases.items():
        err = map_error(fake(code, domain), "doing it")
        assert (err.permanent, err.code) == (permanent, expected), (code, domain)


def test_a_tls_certificate_refusal_is_a_certificate_error_not_a_password_or_network_one():
    from compute.drivers.libvirt import map_error

    def fake(code: int, message: str) -> libvirt.libvirtError:
        exc = libvirt.libvirtError(message)
        exc.err = (code, libvirt.VIR_FROM_RPC, message, 2, None, None, None, 0, 0)
        return exc

    # What libvirt 9 says for a host certificate our CA did not sign (or for another name, or expired),
    # and for a pki path without the CA file.
    for code, message in (
        (libvirt.VIR_ERR_AUTH_FAILED, "authentication failed: Failed to verify peer's certificate"),
        (libvirt.VIR_ERR_SYSTEM_ERROR, "Cannot read CA certificate '/etc/pki/CA/cacert.pem': No such file"),
    ):
        err = map_error(fake(code, message), "cannot connect")
        assert (err.permanent, err.code) == (True, ErrorCode.CERTIFICATE), message
    # A wrong password stays AUTH; a refused socket stays UNREACHABLE.
    assert map_error(fake(libvirt.VIR_ERR_AUTH_FAILED, "authentication failed: bad password"), "x").code == "auth"
    refused = map_error(fake(libvirt.VIR_ERR_SYSTEM_ERROR, "unable to connect to server: Connection refused"), "x")
    assert refused.code == ErrorCode.UNREACHABLE


def test_check_image_reports_format_and_size_of_good_files(tmp_path):
    qcow2 = tmp_path / "ubuntu.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "20M"], check=True)
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\0" * (2 * 1024**2))
    iso = tmp_path / "install.iso"
    iso.write_bytes(b"\0" * 0x8001 + b"CD001" + b"\0" * (2 * 1024**2))
    assert check_image(str(qcow2)).format == "qcow2"
    assert check_image(str(qcow2)).virtual_size_bytes == 20 * 1024**2
    assert check_image(str(raw)).format == "raw"
    assert check_image(str(iso)).format == "iso"


def test_check_image_refuses_an_overlay(tmp_path):
    base = tmp_path / "base.qcow2"
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)], check=True
    )
    with pytest.raises(DriverError) as err:
        check_image(str(overlay))
    assert err.value.permanent and err.value.code == ErrorCode.BAD_IMAGE and "backing file" in err.value.message

"""Direct kernel boot in the libvirt domain XML: the image's kernel, initrd and command line, the serial
console logged on the host; a disk-booted VM's XML and fingerprint stay as they were."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, replace

import pytest

from compute.drivers import xml as lx
from compute.drivers.base import BootSpec, DriverError, ErrorCode, NicSpec, VMSpec

SPEC = VMSpec(
    name="desk-k",
    vcpus=1,
    memory_mib=128,
    image_pool="p",
    image_volume="g.qcow2",
    domain_type="qemu",
    nics=(NicSpec("campus", mac="52:54:00:00:00:01"),),
)
BOOT = BootSpec(
    kernel="/var/lib/cc-shared/guest/vmlinuz", initrd="/var/lib/cc-shared/guest/initrd.gz", cmdline="console=ttyS0"
)


def _root(spec: VMSpec) -> ET.Element:
    return ET.fromstring(lx.domain_xml(spec, system_pool="p", system_volume="desk-k-system.qcow2"))


def test_a_kernel_booted_domain_has_kernel_initrd_cmdline_and_no_boot_device():
    os_el = _root(replace(SPEC, boot=BOOT)).find("os")
    assert os_el.findtext("kernel") == "/var/lib/cc-shared/guest/vmlinuz"
    assert os_el.findtext("initrd") == "/var/lib/cc-shared/guest/initrd.gz"
    assert os_el.findtext("cmdline") == "console=ttyS0"
    assert os_el.find("boot") is None


def test_a_kernel_booted_domain_logs_its_serial_console_on_the_host():
    devices = _root(replace(SPEC, boot=BOOT)).find("devices")
    serial = devices.find("serial")
    assert serial.get("type") == "file"
    assert serial.find("source").attrib == {"path": "/var/log/libvirt/qemu/desk-k-serial.log", "append": "off"}
    assert lx.serial_log_path("desk-k") == "/var/log/libvirt/qemu/desk-k-serial.log"
    assert serial.find("target").attrib == {"port": "0"}


def test_a_kernel_without_initrd_or_cmdline_leaves_them_out():
    os_el = _root(replace(SPEC, boot=BootSpec(kernel="/boot/vmlinuz"))).find("os")
    assert os_el.findtext("kernel") == "/boot/vmlinuz"
    assert os_el.find("initrd") is None and os_el.find("cmdline") is None


def test_a_disk_booted_domain_is_unchanged():
    root = _root(SPEC)
    assert root.find("os/boot").get("dev") == "hd"
    assert root.find("os/kernel") is None
    assert root.find("devices/serial") is None


def test_the_fingerprint_of_a_disk_booted_vm_does_not_change_and_the_kernel_counts():
    # The hash VMs created before direct kernel boot carry in their metadata: a spec without the field.
    before = asdict(SPEC)
    for key in ("description", "folder", "resource_pool", "datastore", "template", "boot"):
        before.pop(key)
    assert lx.spec_fingerprint(SPEC) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:32]
    assert lx.spec_fingerprint(replace(SPEC, boot=BOOT)) != lx.spec_fingerprint(SPEC)
    other = replace(BOOT, cmdline="console=ttyS0 quiet")
    assert lx.spec_fingerprint(replace(SPEC, boot=other)) != lx.spec_fingerprint(replace(SPEC, boot=BOOT))


@pytest.mark.parametrize(
    "boot", [BootSpec(kernel="vmlinuz"), BootSpec(kernel="/boot/vmlinuz", initrd="initrd.gz"), BootSpec(kernel="")]
)
def test_a_relative_or_missing_kernel_is_a_permanent_invalid_spec(boot):
    with pytest.raises(DriverError) as caught:
        _root(replace(SPEC, boot=boot))
    assert caught.value.permanent and caught.value.code == ErrorCode.INVALID_SPEC

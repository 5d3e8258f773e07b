"""Libvirt XML for CampusCloud: build domain/volume/network/nwfilter documents, parse them back.

Pure functions on strings and the dataclasses of base.py, so they are tested without
any libvirt connection.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import xml.etree.ElementTree as ET
from dataclasses import asdict

from .base import (
    BootSpec,
    DhcpHost,
    DiskInfo,
    DriverError,
    ErrorCode,
    FirewallRule,
    ForwardMode,
    GpuSpec,
    NetworkSpec,
    NicInfo,
    NwFilterSpec,
    PowerState,
    VMInfo,
    VMSpec,
)

# Our own <metadata> element: which golden image a VM came from and a fingerprint
# of the spec, so create_vm can tell "already created" from "name taken".
META_NS = "https://campuscloud.local/xmlns/domain/1"
ET.register_namespace("cc", META_NS)

SYSTEM_TARGET = "vda"
_TARGETS = [f"vd{c}" for c in "abcdefghijklmnopqrstuvwxyz"]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def _tostring(el: ET.Element) -> str:
    ET.indent(el)
    return ET.tostring(el, encoding="unicode")


def parse(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DriverError(f"unreadable XML from libvirt: {exc}", permanent=True) from exc


def spec_fingerprint(spec: VMSpec) -> str:
    """A stable hash of everything that shapes the VM (not its placement hints)."""
    data = asdict(spec)
    for key in ("description", "folder", "resource_pool", "datastore", "template"):
        data.pop(key, None)
    if spec.boot is None:
        data.pop("boot")  # the fingerprints of VMs made before direct kernel boot existed stay the same
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def next_target(used: set[str]) -> str:
    for target in _TARGETS[1:]:
        if target not in used:
            return target
    raise DriverError("no free virtio disk target left", permanent=True, code=ErrorCode.INVALID_SPEC)


def pci_address_attrs(address: str) -> dict[str, str]:
    """ "0000:3b:00.1" -> libvirt's domain/bus/slot/function attributes."""
    try:
        dom_bus_slot, function = address.strip().rsplit(".", 1)
        parts = dom_bus_slot.split(":")
        if len(parts) == 2:
            parts.insert(0, "0000")
        domain, bus, slot = (int(p, 16) for p in parts)
        func = int(function, 16)
    except ValueError as exc:
        raise DriverError(
            f"bad PCI address {address!r} (expected 0000:3b:00.0)", permanent=True, code=ErrorCode.INVALID_SPEC
        ) from exc
    return {"domain": f"0x{domain:04x}", "bus": f"0x{bus:02x}", "slot": f"0x{slot:02x}", "function": f"0x{func:x}"}


def _gpu_elements(devices: ET.Element, gpu: GpuSpec) -> None:
    if gpu.mode == "passthrough":
        if not gpu.pci_addresses:
            raise DriverError("GPU passthrough needs a PCI address", permanent=True, code=ErrorCode.INVALID_SPEC)
        for address in gpu.pci_addresses:
            hostdev = _sub(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
            _sub(_sub(hostdev, "source"), "address", **pci_address_attrs(address))
    else:
        if not gpu.mdev_uuid:
            raise DriverError("a vGPU needs the UUID of a mediated device", permanent=True, code=ErrorCode.INVALID_SPEC)
        # display='off': the desktop is reached through VNC on the emulated card.
        hostdev = _sub(devices, "hostdev", mode="subsystem", type="mdev", model="vfio-pci", display="off")
        _sub(_sub(hostdev, "source"), "address", uuid=gpu.mdev_uuid)


def serial_log_path(name: str) -> str:
    """Where the host keeps what a kernel-booted VM writes on its serial console (virtlogd's file)."""
    return f"/var/log/libvirt/qemu/{name}-serial.log"


def _check_boot(boot: BootSpec) -> None:
    for path in (boot.kernel, boot.initrd):
        if path and not path.startswith("/"):
            raise DriverError(
                f"kernel and initrd must be absolute paths on the host, not {path!r}",
                permanent=True,
                code=ErrorCode.INVALID_SPEC,
            )
    if not boot.kernel:
        raise DriverError("direct kernel boot needs a kernel", permanent=True, code=ErrorCode.INVALID_SPEC)


def _os_element(dom: ET.Element, spec: VMSpec) -> None:
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=spec.machine or None)
    if spec.boot is None:
        _sub(os_el, "boot", dev="hd")
        return
    _sub(os_el, "kernel", spec.boot.kernel)
    if spec.boot.initrd:
        _sub(os_el, "initrd", spec.boot.initrd)
    if spec.boot.cmdline:
        _sub(os_el, "cmdline", spec.boot.cmdline)


def _serial_console(devices: ET.Element, name: str) -> None:
    """The serial port written to a file on the host (a fresh one at each start): how an operator, and
    the tests, read a kernel-booted guest's boot. A file, not a pty: a host without a pty device (a
    minimal container or namespace) still starts the VM; libvirt adds the console over serial 0."""
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=serial_log_path(name), append="off")
    _sub(serial, "target", port="0")


def _check_shape(spec: VMSpec) -> None:
    if spec.domain_type not in ("kvm", "qemu"):
        raise DriverError(
            f"domain type must be kvm or qemu, not {spec.domain_type!r}", permanent=True, code=ErrorCode.INVALID_SPEC
        )
    if spec.vcpus < 1 or spec.memory_mib < 16:
        raise DriverError("a VM needs at least 1 vCPU and 16 MiB", permanent=True, code=ErrorCode.INVALID_SPEC)
    if spec.boot is not None:
        _check_boot(spec.boot)


def _domain_head(dom: ET.Element, spec: VMSpec) -> None:
    """Everything of the domain but its devices: name, our metadata, size, boot, features, clock."""
    _sub(dom, "name", spec.name)
    if spec.description:
        _sub(dom, "description", spec.description)
    meta = _sub(_sub(dom, "metadata"), f"{{{META_NS}}}instance")
    _sub(meta, f"{{{META_NS}}}image", pool=spec.image_pool, volume=spec.image_volume)
    _sub(meta, f"{{{META_NS}}}spec", spec_fingerprint(spec))
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus))
    _os_element(dom, spec)
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.domain_type == "kvm":
        _sub(dom, "cpu", mode="host-passthrough")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")


def _disk_element(pool: str, volume: str, target: str) -> ET.Element:
    """A virtio disk on a pool volume."""
    disk = ET.Element("disk", type="volume", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    _sub(disk, "source", pool=pool, volume=volume)
    _sub(disk, "target", dev=target, bus="virtio")
    return disk


def _interface_element(devices: ET.Element, nic) -> None:
    iface = _sub(devices, "interface", type="network")
    if nic.mac:
        _sub(iface, "mac", address=nic.mac.lower())
    _sub(iface, "source", network=nic.network)
    _sub(iface, "model", type="virtio")
    if nic.nwfilter:
        ref = _sub(iface, "filterref", filter=nic.nwfilter)
        for key, value in sorted(nic.filter_params.items()):
            _sub(ref, "parameter", name=key, value=value)


def domain_xml(
    spec: VMSpec,
    *,
    system_pool: str,
    system_volume: str,
    data_volumes: list[tuple[str, str]] = (),
) -> str:
    """Domain XML for ``spec``; disks are pool volumes (system on vda, data from vdb on)."""
    _check_shape(spec)
    dom = ET.Element("domain", type=spec.domain_type)
    _domain_head(dom, spec)
    devices = _sub(dom, "devices")
    volumes = [(system_pool, system_volume), *data_volumes]
    for index, (pool, volume) in enumerate(volumes):
        devices.append(_disk_element(pool, volume, _TARGETS[index]))
    for nic in spec.nics:
        _interface_element(devices, nic)
    if spec.boot is not None:
        _serial_console(devices, spec.name)
    # The guest agent channel lets graceful shutdown and IP discovery work when the image has one.
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    if spec.vnc:
        # No listen address here: QEMU listens where the host's qemu.conf says (vnc_listen: its management
        # address; loopback by default), and a migrated domain on its new host's. A random password until
        # a console ticket sets a one-time one: nobody on the management network gets in without the portal.
        _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", passwd=secrets.token_urlsafe(6)[:8])
        _sub(devices, "input", type="tablet", bus="usb")
        _sub(_sub(devices, "video"), "model", type="vga")
    if spec.gpu is not None:
        _gpu_elements(devices, spec.gpu)
    _sub(devices, "memballoon", model="virtio")
    return _tostring(dom)


def set_shape(root: ET.Element, *, vcpus: int, memory_mib: int, gpu: GpuSpec | None) -> None:
    """Give a (stopped) domain's XML new vCPU, memory and GPU devices; everything else stays."""
    if vcpus < 1 or memory_mib < 16:
        raise DriverError("a VM needs at least 1 vCPU and 16 MiB", permanent=True, code=ErrorCode.INVALID_SPEC)
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = _sub(root, "vcpu")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is None and tag == "memory":
            el = _sub(root, tag)
        if el is not None:
            el.text, el.attrib = str(memory_mib), {"unit": "MiB"}
    devices = root.find("devices")
    if devices is None:
        devices = _sub(root, "devices")
    for hostdev in devices.findall("hostdev"):
        if hostdev.get("type") in ("pci", "mdev"):
            devices.remove(hostdev)
    if gpu is not None:
        _gpu_elements(devices, gpu)


def disk_xml(pool: str, volume: str, target: str) -> str:
    return _tostring(_disk_element(pool, volume, target))


def volume_xml(name: str, capacity_bytes: int, *, backing_path: str = "", backing_format: str = "qcow2") -> str:
    vol = ET.Element("volume")
    _sub(vol, "name", name)
    _sub(vol, "capacity", str(capacity_bytes), unit="bytes")
    if not backing_path:
        # A linked clone's allocation follows its writes; a new empty volume starts sparse.
        _sub(vol, "allocation", "0", unit="bytes")
    _sub(_sub(vol, "target"), "format", type="qcow2")
    if backing_path:
        store = _sub(vol, "backingStore")
        _sub(store, "path", backing_path)
        _sub(store, "format", type=backing_format)
    return _tostring(vol)


def image_meta(root: ET.Element) -> tuple[str, str, str]:
    """(golden pool, golden volume, spec fingerprint) from our metadata, or empty strings."""
    meta = root.find(f"metadata/{{{META_NS}}}instance")
    if meta is None:
        return "", "", ""
    image = meta.find(f"{{{META_NS}}}image")
    fingerprint = meta.findtext(f"{{{META_NS}}}spec", "")
    if image is None:
        return "", "", fingerprint
    return image.get("pool", ""), image.get("volume", ""), fingerprint


def _memory_mib(el: ET.Element | None) -> int:
    if el is None or not el.text:
        return 0
    value = int(el.text)
    unit = el.get("unit", "KiB")
    factors = {"b": 1, "bytes": 1, "KiB": 1024, "k": 1024, "MiB": 1024**2, "M": 1024**2, "GiB": 1024**3, "G": 1024**3}
    return value * factors.get(unit, 1024) // (1024**2)


def domain_disks(root: ET.Element) -> list[ET.Element]:
    return [d for d in root.findall("devices/disk") if d.get("device", "disk") == "disk"]


def disk_at(root: ET.Element, target: str) -> ET.Element | None:
    """The disk attached at ``target`` (e.g. "vda"), or None."""
    return next((d for d in domain_disks(root) if d.find(f"target[@dev='{target}']") is not None), None)


def disk_source(disk: ET.Element) -> tuple[str, str, str]:
    """(pool, volume, path) of a disk element; path only for file/block disks."""
    src = disk.find("source")
    if src is None:
        return "", "", ""
    return src.get("pool", ""), src.get("volume", ""), src.get("file") or src.get("dev") or ""


def parse_gpu(root: ET.Element) -> GpuSpec | None:
    pci: list[str] = []
    for hostdev in root.findall("devices/hostdev"):
        addr = hostdev.find("source/address")
        if addr is None:
            continue
        if hostdev.get("type") == "mdev":
            return GpuSpec(mode="vgpu", mdev_uuid=addr.get("uuid", ""))
        if hostdev.get("type") == "pci":
            pci.append(
                "{:04x}:{:02x}:{:02x}.{:x}".format(
                    *(int(addr.get(k, "0"), 16) for k in ("domain", "bus", "slot", "function"))
                )
            )
    return GpuSpec(mode="passthrough", pci_addresses=tuple(pci)) if pci else None


def vm_info(
    root: ET.Element,
    state: PowerState,
    disk_sizes: dict[str, int] | None = None,
    disk_paths: dict[str, str] | None = None,
    disk_backings: dict[str, str] | None = None,
) -> VMInfo:
    """VMInfo from domain XML; sizes, paths and backing files per target come from the caller."""
    disk_sizes = disk_sizes or {}
    disk_paths = disk_paths or {}
    disk_backings = disk_backings or {}
    disks = []
    for disk in domain_disks(root):
        target = disk.find("target")
        dev = target.get("dev", "") if target is not None else ""
        pool, volume, path = disk_source(disk)
        backing = disk.find("backingStore/source")
        disks.append(
            DiskInfo(
                target=dev,
                size_bytes=disk_sizes.get(dev, 0),
                pool=pool,
                volume=volume,
                path=path or disk_paths.get(dev, ""),
                backing=(backing.get("file", "") if backing is not None else "") or disk_backings.get(dev, ""),
            )
        )
    nics = []
    for iface in root.findall("devices/interface"):
        mac = iface.find("mac")
        src = iface.find("source")
        network = ""
        if src is not None:
            network = src.get("network") or src.get("bridge") or src.get("dev") or ""
        nics.append(NicInfo(mac=mac.get("address", "") if mac is not None else "", network=network))
    vnc_host, vnc_port = "", None
    graphics = root.find("devices/graphics[@type='vnc']")
    if graphics is not None and state in (PowerState.RUNNING, PowerState.PAUSED):
        port = int(graphics.get("port", "-1"))
        if port > 0:
            vnc_port = port
            vnc_host = graphics.get("listen", "127.0.0.1")
    vcpu = root.findtext("vcpu", "0")
    return VMInfo(
        name=root.findtext("name", ""),
        uuid=root.findtext("uuid", ""),
        power_state=state,
        vcpus=int(vcpu),
        memory_mib=_memory_mib(root.find("memory")),
        disks=tuple(disks),
        nics=tuple(nics),
        vnc_host=vnc_host,
        vnc_port=vnc_port,
        gpu=parse_gpu(root),
        description=root.findtext("description", ""),
    )


def _network_addresses(spec: NetworkSpec) -> tuple[str, str] | None:
    """(gateway, netmask) for the network's <ip>, or None for a network without one."""
    if not spec.cidr:
        return None
    try:
        net = ipaddress.IPv4Network(spec.cidr, strict=False)
        gateway = ipaddress.IPv4Address(spec.gateway) if spec.gateway else next(net.hosts())
        for addr in (spec.dhcp_start, spec.dhcp_end, *(h.ip for h in spec.dhcp_hosts)):
            if addr and ipaddress.IPv4Address(addr) not in net:
                raise ValueError(f"{addr} is outside {net}")
    except (ValueError, StopIteration) as exc:
        raise DriverError(f"bad network addressing: {exc}", permanent=True, code=ErrorCode.INVALID_SPEC) from exc
    return str(gateway), str(net.netmask)


def dhcp_host_xml(host: DhcpHost) -> str:
    el = ET.Element("host", mac=host.mac.lower(), ip=host.ip)
    if host.name:
        el.set("name", host.name)
    return ET.tostring(el, encoding="unicode")


def _check_forward(spec: NetworkSpec) -> None:
    if spec.forward not in tuple(ForwardMode):
        raise DriverError(
            f"forward mode must be nat, open, bridge or none, not {spec.forward!r}",
            permanent=True,
            code=ErrorCode.INVALID_SPEC,
        )
    if spec.vlan is not None and not (spec.forward == ForwardMode.BRIDGE and spec.virtualport == "openvswitch"):
        # libvirt refuses a <vlan> anywhere else ("whose type doesn't support vlan configuration").
        raise DriverError(
            f"network {spec.name!r}: a VLAN tag needs a bridged network on an Open vSwitch bridge",
            permanent=True,
            code=ErrorCode.INVALID_SPEC,
        )


DNSMASQ_NS = "http://libvirt.org/schemas/network/dnsmasq/1.0"
ET.register_namespace("dnsmasq", DNSMASQ_NS)


def _bridged(net: ET.Element, spec: NetworkSpec) -> None:
    """A network on a host bridge: the physical segment's addressing and DHCP, an OVS VLAN tag."""
    if not spec.bridge:
        raise DriverError("a bridged network needs the host bridge's name", permanent=True, code=ErrorCode.INVALID_SPEC)
    _sub(net, "forward", mode="bridge")
    _sub(net, "bridge", name=spec.bridge)
    if spec.virtualport:
        _sub(net, "virtualport", type=spec.virtualport)
    if spec.vlan is not None:
        if not 1 <= spec.vlan <= 4094:
            raise DriverError(f"VLAN id {spec.vlan} is not 1-4094", permanent=True, code=ErrorCode.INVALID_SPEC)
        _sub(_sub(net, "vlan"), "tag", id=str(spec.vlan))


def _routed(net: ET.Element, spec: NetworkSpec) -> None:
    """A NAT (or isolated) network of libvirt's own bridge, with its gateway address and dnsmasq DHCP."""
    if spec.forward in (ForwardMode.NAT, ForwardMode.OPEN):
        _sub(net, "forward", mode=str(spec.forward))
    if spec.bridge:
        _sub(net, "bridge", name=spec.bridge, stp="on" if spec.stp else "off", delay="0")
    addresses = _network_addresses(spec)
    if not addresses:
        return
    ip = _sub(net, "ip", address=addresses[0], netmask=addresses[1])
    if spec.dhcp_start or spec.dhcp_hosts:
        dhcp = _sub(ip, "dhcp")
        if spec.dhcp_start:
            _sub(dhcp, "range", start=spec.dhcp_start, end=spec.dhcp_end or spec.dhcp_start)
        for host in spec.dhcp_hosts:
            dhcp.append(ET.fromstring(dhcp_host_xml(host)))
    if spec.dhcp_router:
        # libvirt's dnsmasq namespace: options passed to the network's dnsmasq as they are.
        options = _sub(net, f"{{{DNSMASQ_NS}}}options")
        _sub(options, f"{{{DNSMASQ_NS}}}option", value=f"dhcp-option=3,{spec.dhcp_router}")


def network_xml(spec: NetworkSpec, *, uuid: str = "") -> str:
    _check_forward(spec)
    net = ET.Element("network")
    _sub(net, "name", spec.name)
    if uuid:
        _sub(net, "uuid", uuid)
    if spec.forward == ForwardMode.BRIDGE:
        _bridged(net, spec)
    else:
        _routed(net, spec)
    return _tostring(net)


def network_dhcp_hosts(xml: str) -> list[DhcpHost]:
    root = parse(xml)
    return [
        DhcpHost(mac=h.get("mac", "").lower(), ip=h.get("ip", ""), name=h.get("name", ""))
        for h in root.findall("ip/dhcp/host")
        if h.get("mac")
    ]


def _rule_xml(parent: ET.Element, rule: FirewallRule, direction: str | None = None) -> None:
    el = _sub(parent, "rule", action=rule.action, direction=direction or rule.direction, priority=str(rule.priority))
    proto = _sub(el, rule.protocol)
    if rule.remote_cidr:
        try:
            net = ipaddress.ip_network(rule.remote_cidr, strict=False)
        except ValueError as exc:
            raise DriverError(f"bad CIDR {rule.remote_cidr!r}", permanent=True, code=ErrorCode.INVALID_SPEC) from exc
        # The remote end is the packet's source going in and its destination going out.
        side = "src" if rule.direction == "in" else "dst"
        proto.set(f"{side}ipaddr", str(net.network_address))
        proto.set(f"{side}ipmask", str(net.prefixlen))
    if rule.protocol in ("tcp", "udp") and rule.port_min is not None:
        proto.set("dstportstart", str(rule.port_min))
        proto.set("dstportend", str(rule.port_max if rule.port_max is not None else rule.port_min))


ANTI_SPOOFING_FILTER = "clean-traffic"  # libvirt's stock filter (libvirt-daemon-config-nwfilter)


def nwfilter_xml(spec: NwFilterSpec) -> str:
    root = ET.Element("filter", name=spec.name, chain="root")
    if spec.uuid:
        _sub(root, "uuid", spec.uuid)
    if spec.anti_spoofing:
        _sub(root, "filterref", filter=ANTI_SPOOFING_FILTER)
    for rule in spec.rules:
        if rule.port_min is not None and rule.protocol not in ("tcp", "udp"):
            raise DriverError("ports only apply to tcp and udp rules", permanent=True, code=ErrorCode.INVALID_SPEC)
        _rule_xml(root, rule)
    if spec.default_drop:
        # Without these a default-drop filter would cut the VM off its DHCP lease.
        _rule_xml(root, FirewallRule("out", "udp", 67, 67, priority=100))
        _rule_xml(root, FirewallRule("in", "udp", 68, 68, priority=100))
        _sub(_sub(root, "rule", action="drop", direction="inout", priority="1000"), "all")
    return _tostring(root)

"""libvirt networks, their DHCP reservations, and nwfilters (security groups on a VM's NIC)."""

from __future__ import annotations

import contextlib
import dataclasses
import xml.etree.ElementTree as ET

import libvirt

from .. import xml as lx
from ..base import DhcpHost, DriverError, ErrorCode, NetworkSpec, NwFilterSpec, unsupported
from . import objects as lo
from .connection import Connection, is_test_driver
from .errors import tolerating


def _shape(root: ET.Element) -> tuple:
    """What makes two network definitions the same network, whatever libvirt added to the XML."""
    forward = root.find("forward")
    ip = root.find("ip")
    rng = root.find("ip/dhcp/range")
    port = root.find("virtualport")
    return (
        forward.get("mode") if forward is not None else "none",
        ip.get("address") if ip is not None else "",
        ip.get("netmask") if ip is not None else "",
        (rng.get("start"), rng.get("end")) if rng is not None else None,
        port.get("type") if port is not None else "",
        sorted(tag.get("id", "") for tag in root.findall("vlan/tag")),
    )


def _same_network(current: ET.Element, wanted: ET.Element) -> bool:
    bridge = wanted.find("bridge")
    if bridge is not None:
        current_bridge = current.find("bridge")
        if current_bridge is None or current_bridge.get("name") != bridge.get("name"):
            return False
    return _shape(current) == _shape(wanted)


def _update_flags(net: libvirt.virNetwork) -> int:
    flags = 0
    if net.isActive():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
    if net.isPersistent():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
    return flags


def _dhcp_update(net: libvirt.virNetwork, command: int, host: DhcpHost) -> None:
    net.update(command, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, lx.dhcp_host_xml(host), _update_flags(net))


def _defined(conn: libvirt.virConnect, name: str, xml: str) -> libvirt.virNetwork:
    """The network ``name``, defined from ``xml`` when it is missing."""
    net = lo.find_network(conn, name)
    if net is not None:
        return net
    try:
        return conn.networkDefineXML(xml)
    except libvirt.libvirtError:
        # "already exists with uuid ...": another connection defined it first.
        net = lo.find_network(conn, name)
        if net is None:
            raise
        return net


def _started(net: libvirt.virNetwork) -> None:
    if not net.isActive():
        try:
            net.create()
        except libvirt.libvirtError:
            # "network is already active": another connection started it first.
            if not net.isActive():
                raise
    if net.isPersistent() and not net.autostart():
        net.setAutostart(1)


class Networks(Connection):
    def network_ensure(self, spec: NetworkSpec) -> None:
        """Define, start and autostart the network; an identical existing one is kept as it is.

        Safe when several processes (or portals) ensure the same network at once: a define
        or start that loses the race to another connection is taken as done when the
        network is then there (and the same), active."""
        wanted_xml = lx.network_xml(spec)
        with self._calls(f"cannot set up network {spec.name!r}") as conn:
            net = _defined(conn, spec.name, wanted_xml)
            if not _same_network(lx.parse(net.XMLDesc(0)), lx.parse(wanted_xml)):
                raise DriverError(
                    f"network {spec.name!r} exists with another configuration", permanent=True, code=ErrorCode.EXISTS
                )
            _started(net)
        for host in spec.dhcp_hosts:
            self.dhcp_host_set(spec.name, host)

    def network_delete(self, name: str) -> None:
        with self._calls(f"cannot delete network {name!r}") as conn:
            net = lo.find_network(conn, name)
            if net is None:
                return
            if net.isActive():
                net.destroy()
            if net.isPersistent():
                net.undefine()

    def dhcp_hosts(self, network: str) -> list[DhcpHost]:
        return self._run(
            f"cannot read DHCP hosts of network {network!r}",
            lambda conn: lx.network_dhcp_hosts(lo.network(conn, network).XMLDesc(0)),
        )

    def dhcp_host_set(self, network: str, host: DhcpHost) -> None:
        """Add or change the fixed address of ``host.mac``, live and persistently."""
        host = DhcpHost(mac=host.mac.lower(), ip=host.ip, name=host.name)
        with self._calls(f"cannot set DHCP host {host.mac} on network {network!r}") as conn:
            net = lo.network(conn, network)
            current = lx.network_dhcp_hosts(net.XMLDesc(0))
            same_mac = next((h for h in current if h.mac == host.mac), None)
            if same_mac == host:
                return
            clash = next((h for h in current if h.ip == host.ip and h.mac != host.mac), None)
            if clash is not None:
                raise DriverError(
                    f"{host.ip} is already given to {clash.mac} on network {network!r}",
                    permanent=True,
                    code=ErrorCode.EXISTS,
                )
            modify, add = libvirt.VIR_NETWORK_UPDATE_COMMAND_MODIFY, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
            _dhcp_update(net, modify if same_mac else add, host)

    def dhcp_host_remove(self, network: str, mac: str) -> None:
        with self._calls(f"cannot remove DHCP host {mac} from network {network!r}") as conn:
            net = lo.network(conn, network)
            entry = next((h for h in lx.network_dhcp_hosts(net.XMLDesc(0)) if h.mac == mac.lower()), None)
            if entry is not None:
                _dhcp_update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, entry)

    def nwfilter_define(self, spec: NwFilterSpec) -> str:
        """Define or redefine a filter and return its UUID; running VMs pick up changes live."""
        with self._calls(f"cannot define nwfilter {spec.name!r}") as conn:
            if is_test_driver(conn):
                raise unsupported("nwfilter", "libvirt's test driver")
            uuid = spec.uuid
            if not uuid:
                # Redefining under the same name needs the same UUID, or libvirt refuses.
                with contextlib.suppress(libvirt.libvirtError):
                    uuid = conn.nwfilterLookupByName(spec.name).UUIDString()
            xml = lx.nwfilter_xml(dataclasses.replace(spec, uuid=uuid))
            return conn.nwfilterDefineXML(xml).UUIDString()

    def nwfilter_delete(self, name: str) -> None:
        with self._calls(f"cannot delete nwfilter {name!r}") as conn:
            if is_test_driver(conn):
                raise unsupported("nwfilter", "libvirt's test driver")
            with tolerating(libvirt.VIR_ERR_NO_NWFILTER):
                conn.nwfilterLookupByName(name).undefine()

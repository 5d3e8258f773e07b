"""Names and specs: what network's rows (networks, NICs, security groups) are as libvirt objects on an endpoint.

libvirt object names carry an endpoint-configurable prefix (options ``network_prefix``,
``bridge_prefix``, ``filter_prefix``) so that several endpoints can share one test daemon."""

import dataclasses
import uuid

from compute.drivers.base import (
    DhcpHost,
    DriverError,
    ErrorCode,
    FirewallRule,
    ForwardMode,
    NetworkSpec,
    NicSpec,
    NwFilterSpec,
)
from compute.models import Desktop, Endpoint
from network import selectors as network_selectors
from network.models import Address, Network, SecurityGroup, SegmentType

NETWORK_PREFIX = "ccnet-"


BRIDGE_PREFIX = "ccbr"


FILTER_PREFIX = "cc-fw-"


BOUND_STATES = [s for s in Desktop.State.values if s != Desktop.State.DELETED]


def is_libvirt(endpoint: Endpoint) -> bool:
    return endpoint.kind == Endpoint.Kind.LIBVIRT


def filters_supported(endpoint: Endpoint) -> bool:
    """nwfilters need a real libvirtd: libvirt's test driver and vCenter have none."""
    return is_libvirt(endpoint) and not endpoint.url.startswith("test:")


def libvirt_network_name(network: Network, endpoint: Endpoint) -> str:
    return f"{endpoint.options.get('network_prefix', NETWORK_PREFIX)}{network.pk}"


def bridge_name(network: Network, endpoint: Endpoint) -> str:
    return f"{endpoint.options.get('bridge_prefix', BRIDGE_PREFIX)}{network.pk}"[:15]


def filter_name(address: Address | int, endpoint: Endpoint) -> str:
    """A NIC's nwfilter: one per NIC, so a NIC changes group by redefining its own filter, live."""
    pk = address if isinstance(address, int) else address.pk
    return f"{endpoint.options.get('filter_prefix', FILTER_PREFIX)}{pk}"


def nic_network_name(network: Network, endpoint: Endpoint) -> str:
    """The name a NIC attaches to: the libvirt network, or on vCenter the port group (by name or VLAN)."""
    if is_libvirt(endpoint):
        if network.kind == Network.Kind.FLAT and not network.bridge and network.portgroup:
            return network.portgroup
        return libvirt_network_name(network, endpoint)
    if network.portgroup:
        return network.portgroup
    by_vlan = endpoint.options.get("vlan_portgroups", {})
    if network.segment_id is not None and str(network.segment_id) in by_vlan:
        return by_vlan[str(network.segment_id)]
    return endpoint.default_network


def _flat_bridge(network: Network, endpoint: Endpoint) -> tuple[str, bool]:
    """The host bridge a flat network attaches to on this endpoint, and whether it is Open vSwitch.

    The network's own bridge; else, for a VLAN, the endpoint's bridge for that VLAN (option
    ``vlan_bridges``: {"120": "br120"}, a Linux bridge on the VLAN's sub-interface), else its
    first Open vSwitch bridge (option ``ovs_bridges``), where libvirt tags the VLAN itself.
    """
    ovs = list(endpoint.options.get("ovs_bridges", []))
    if network.bridge:
        return network.bridge, network.bridge in ovs
    vlan = network.segment_id if network.segment_type == SegmentType.VLAN else None
    by_vlan = endpoint.options.get("vlan_bridges", {})
    if vlan is not None and str(vlan) in by_vlan:
        return by_vlan[str(vlan)], by_vlan[str(vlan)] in ovs
    if vlan is not None and ovs:
        return ovs[0], True
    raise DriverError(
        f"flat network {network.name!r} has no host bridge on {endpoint.name}: give the network a bridge, or the "
        f"endpoint the option vlan_bridges (VLAN id → bridge) or ovs_bridges",
        permanent=True,
        code=ErrorCode.INVALID_SPEC,
    )


def network_spec(network: Network, endpoint: Endpoint) -> NetworkSpec:
    name = libvirt_network_name(network, endpoint)
    if network.kind == Network.Kind.FLAT:
        # Bridged to the physical segment; DHCP for it runs outside libvirt (no dnsmasq here). The
        # VLAN goes on the wire as a tag only on Open vSwitch; a Linux bridge is on the VLAN already.
        bridge, ovs = _flat_bridge(network, endpoint)
        tagged = ovs and network.segment_type == SegmentType.VLAN and network.segment_id is not None
        return NetworkSpec(
            name=name,
            forward=ForwardMode.BRIDGE,
            bridge=bridge,
            virtualport="openvswitch" if ovs else "",
            vlan=network.segment_id if tagged else None,
        )
    subnet = network.subnets.order_by("id").first()
    if subnet is None:
        return NetworkSpec(name=name, forward=ForwardMode.NAT, bridge=bridge_name(network, endpoint))
    return NetworkSpec(
        name=name,
        forward=ForwardMode.NAT,
        bridge=bridge_name(network, endpoint),
        cidr=subnet.cidr,
        gateway=subnet.gateway,
        dhcp_start=subnet.dhcp_start,
        dhcp_end=subnet.dhcp_end,
    )


def dhcp_host(address: Address) -> DhcpHost:
    return DhcpHost(mac=address.mac, ip=address.ip, name=address.hostname)


def has_dhcp(network: Network) -> bool:
    return network.kind == Network.Kind.ROUTER


def group_rules(group: SecurityGroup) -> tuple[FirewallRule, ...]:
    """The group's rules as firewall rules. A remote group becomes the /32s of the NICs in it;
    a default group also drops everything coming from other tenants' subnets, first."""
    rules: list[FirewallRule] = []
    if group.is_default:
        for cidr in network_selectors.other_tenants_cidrs(group.tenant):
            rules.append(FirewallRule("in", "all", remote_cidr=cidr, action="drop", priority=300))
    for rule in group.rules.all().order_by("id"):
        if rule.remote_group_id:
            members = Address.objects.filter(
                security_group_id=rule.remote_group_id, state=Address.State.ALLOCATED, kind=Address.Kind.NIC
            ).values_list("ip", flat=True)
            remotes = [f"{ip}/32" for ip in members]
        else:
            remotes = [rule.remote_cidr]
        for remote in remotes:
            rules.append(
                FirewallRule(
                    direction=rule.direction,
                    protocol=rule.protocol,
                    port_min=rule.port_min,
                    port_max=rule.port_max,
                    remote_cidr=remote,
                    priority=500,
                )
            )
    return tuple(rules)


def nwfilter_spec(address: Address, endpoint: Endpoint, rules: tuple[FirewallRule, ...] | None = None) -> NwFilterSpec:
    """The NIC's filter on the endpoint: its group's rules under a name and UUID of the NIC's own,
    and libvirt's anti-spoofing filter. A NIC without a group has no rules and drops nothing else."""
    name = filter_name(address, endpoint)
    # Stable across redefinitions (libvirt then updates the running VM) and distinct per endpoint,
    # as two endpoints may share one daemon (tests do).
    filter_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"campuscloud:{endpoint.name}:{name}")
    grouped = bool(address.security_group_id)
    if rules is None:
        rules = group_rules(address.security_group) if grouped else ()
    return NwFilterSpec(name=name, uuid=str(filter_uuid), rules=rules, default_drop=grouped, anti_spoofing=True)


def with_nics(spec, nics: tuple[NicSpec, ...]):
    """The VMSpec with the desktop's NICs (unchanged when it has none allocated)."""
    return dataclasses.replace(spec, nics=nics) if nics else spec

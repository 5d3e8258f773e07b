"""Networks that span hosts: one L2 segment over the hosts' data network, and a DHCP server per host.

On a registered host with a data (tunnel) address (``Host.data_address``), a network is not libvirt's NAT
network of the single-host model but (docs/architecture.md, "Hosts, agents, queues"):

- the bridge ``bridge_name(network, endpoint)`` of a libvirt network in ``open`` mode (no firewall rules or
  routing of libvirt's), holding the host's own DHCP address of the subnet (an ``Address`` of kind
  RESERVED per (subnet, host), ``dhcp-<host>``), not the gateway: its dnsmasq serves only the bindings of
  the desktops on that host (``dhcp.py`` computes them per endpoint) and hands out the subnet's gateway as
  the router; the gateway itself is on the network host (``edge``);
- a VXLAN device with the network's VNI (allocated from the site's platform VXLAN range when the network
  has none) on the data interface, in that bridge, ``nolearning``, with one all-zero forwarding entry per
  peer host holding the network; a flat network on a provider VLAN gets the VLAN's sub-interface instead.

The devices are made by each host's agent (``compute.tasks.hostnet.host_network_sync`` on the queue
``host.<name>``), from the database alone: ``host_layout`` says what the host should have, the agent
compares and fixes. The portal sends the sync when a desktop's network is prepared on a host, to every
holder when a host joins or leaves a network or changes its data address, and periodically (beat).
Endpoints that are not such hosts (the local ``qemu:///system``) keep the single-host model.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from celery import current_app
from django.db import transaction

from compute.drivers.base import DriverError, ForwardMode, NetworkSpec
from compute.drivers.hostnet import HostNet, OverlaySpec, VlanSpec
from compute.models import Endpoint, Host
from compute.networking.specs import bridge_name, libvirt_network_name
from network import services as network_services
from network.models import Network, NetworkDeployment, SegmentType

log = logging.getLogger(__name__)

VXLAN_PREFIX = "ccvx"
VLAN_PREFIX = "ccvl"
SYNC_TASK = "compute.tasks.hostnet.host_network_sync"
# A sync nobody ran within this time is dropped: the next one (beat, or the next change) does the same work.
SYNC_EXPIRES = 300


def data_host(endpoint: Endpoint) -> Host | None:
    """The endpoint's host when it has a data address: its networks span hosts."""
    return Host.objects.filter(endpoint=endpoint, data_address__isnull=False).first()


def span_kind(network: Network) -> str:
    """How the network crosses hosts: "vxlan", "vlan" (a provider VLAN), or "" (a host bridge of its own)."""
    if network.kind == Network.Kind.FLAT:
        on_vlan = network.segment_type == SegmentType.VLAN and network.segment_id is not None
        return "vlan" if on_vlan and not network.bridge else ""
    return "vlan" if network.segment_type == SegmentType.VLAN else "vxlan"


def vxlan_device(vni: int) -> str:
    return f"{VXLAN_PREFIX}{vni}"


def vlan_device(vlan: int) -> str:
    return f"{VLAN_PREFIX}{vlan}"


def span_spec(network: Network, endpoint: Endpoint) -> NetworkSpec | None:
    """The libvirt network of ``network`` on a host with a data address (None: the single-host model).

    Allocates what the network needs to span hosts: its VNI, the host's DHCP address in the subnet."""
    if data_host(endpoint) is None or not span_kind(network):
        return None
    if span_kind(network) == "vxlan" and network.segment_type == SegmentType.NONE:
        network = network_services.network_vni_ensure(network_id=network.pk)
    name, bridge = libvirt_network_name(network, endpoint), bridge_name(network, endpoint)
    subnet = network.subnets.order_by("id").first()
    if network.kind == Network.Kind.FLAT or subnet is None:
        return NetworkSpec(name=name, forward=ForwardMode.NONE, bridge=bridge, stp=False)
    dhcp = network_services.dhcp_address_reserve(subnet_id=subnet.pk, holder=endpoint.name)
    return NetworkSpec(
        name=name,
        forward=ForwardMode.OPEN,
        bridge=bridge,
        cidr=subnet.cidr,
        gateway=dhcp.ip,
        dhcp_router=subnet.gateway,
        stp=False,
    )


# --- what each host should have (read by the agent) --------------------------------------------------


def fdb_table(holders: dict[int, set[str]], data_addresses: dict[str, str], host: str) -> dict[int, tuple[str, ...]]:
    """{network id: peers' data addresses} for ``host``: every other holder of each of its networks that has
    a data address, sorted. ``holders``: network id → endpoint names; ``data_addresses``: endpoint → address."""
    table = {}
    for network_id, endpoints in holders.items():
        if host not in endpoints:
            continue
        peers = {data_addresses[e] for e in endpoints if e != host and e in data_addresses}
        table[network_id] = tuple(sorted(peers - {data_addresses.get(host)}))
    return table


def host_layout(host: Host) -> list[OverlaySpec | VlanSpec]:
    """The VXLAN and VLAN devices ``host`` should have, from the database alone (a few queries)."""
    if not host.data_address:
        return []
    endpoint = host.endpoint
    mine = set(NetworkDeployment.objects.filter(endpoint=endpoint.name).values_list("network_id", flat=True))
    networks = Network.objects.in_bulk(mine)
    holders: dict[int, set[str]] = defaultdict(set)
    for network_id, name in NetworkDeployment.objects.filter(network_id__in=mine).values_list("network_id", "endpoint"):
        holders[network_id].add(name)
    names = set().union(*holders.values()) if holders else set()
    data_addresses = dict(
        Host.objects.filter(endpoint__name__in=names, data_address__isnull=False).values_list(
            "endpoint__name", "data_address"
        )
    )
    table = fdb_table(holders, data_addresses, endpoint.name)
    specs: list[OverlaySpec | VlanSpec] = []
    for network_id, network in sorted(networks.items()):
        kind, bridge = span_kind(network), bridge_name(network, endpoint)
        if kind == "vxlan" and network.segment_type == SegmentType.VXLAN and network.segment_id is not None:
            vni = network.segment_id
            specs.append(
                OverlaySpec(
                    bridge=bridge,
                    device=vxlan_device(vni),
                    vni=vni,
                    local=host.data_address,
                    peers=table.get(network_id, ()),
                )
            )
        elif kind == "vlan":
            vlan = network.segment_id
            specs.append(VlanSpec(bridge=bridge, device=vlan_device(vlan), vlan=vlan, local=host.data_address))
    return specs


def host_network_sync(*, host_name: str, hostnet: HostNet | None = None) -> dict:
    """On the host's agent: make its VXLAN/VLAN devices and forwarding entries what the database says, and
    remove ours that no network needs any more. ``{"host", "changes", "removed", "errors"}``."""
    report: dict = {"host": host_name, "changes": [], "removed": [], "errors": []}
    host = Host.objects.select_related("endpoint").filter(endpoint__name=host_name).first()
    if host is None:
        report["errors"].append(f"no host {host_name!r}")
        return report
    hostnet = hostnet or HostNet()
    specs = host_layout(host)
    for spec in specs:
        try:
            if isinstance(spec, OverlaySpec):
                report["changes"] += hostnet.overlay_apply(spec)
            else:
                report["changes"] += hostnet.vlan_apply(spec)
        except DriverError as exc:
            report["errors"].append(exc.message)
    try:
        if any(isinstance(spec, OverlaySpec) for spec in specs):
            report["changes"] += hostnet.dhcp_fence(VXLAN_PREFIX)
        report["removed"] = hostnet.devices_prune((VXLAN_PREFIX, VLAN_PREFIX), keep={s.device for s in specs})
    except DriverError as exc:
        report["errors"].append(exc.message)
    if report["changes"] or report["removed"] or report["errors"]:
        log.info("host network sync on %s: %s", host_name, report)
    return report


# --- the portal's side: who must sync ----------------------------------------------------------------


def hosts_sync_send(names, *, connection=None) -> list[str]:
    """Send ``host_network_sync`` to the agents (queues ``host.<name>``) of the named compute nodes; the names
    sent to. ``connection``: a broker connection of the caller's (tests name the testbed's)."""
    targets = sorted(
        Host.objects.filter(endpoint__name__in=set(names), address__isnull=False).values_list(
            "endpoint__name", flat=True
        )
    )
    for name in targets:
        current_app.send_task(SYNC_TASK, args=[name], queue=f"host.{name}", expires=SYNC_EXPIRES, connection=connection)
    return targets


def network_holders(network_id: int) -> set[str]:
    return set(NetworkDeployment.objects.filter(network_id=network_id).values_list("endpoint", flat=True))


def network_joined(*, network: Network, endpoint: Endpoint, new: bool) -> None:
    """The network is (again) on ``endpoint``, a host it spans: the host syncs; every holder does when the
    host is new to it."""
    names = network_holders(network.pk) if new else {endpoint.name}
    transaction.on_commit(lambda: hosts_sync_send(names))


def network_left(*, network_id: int, endpoints: list[str]) -> None:
    """The network left ``endpoints`` (forgotten there, or deleted): they drop its devices and their DHCP
    addresses, the remaining holders drop them from their forwarding entries."""
    for name in endpoints:
        network_services.dhcp_addresses_release(network_id=network_id, holder=name)
    names = set(endpoints) | network_holders(network_id)
    transaction.on_commit(lambda: hosts_sync_send(names))


def host_peers_resync(*, host: Host) -> None:
    """The host's data address changed: it and every host sharing a network with it sync."""
    name = host.endpoint.name
    networks = NetworkDeployment.objects.filter(endpoint=name).values_list("network_id", flat=True)
    peers = set(NetworkDeployment.objects.filter(network_id__in=list(networks)).values_list("endpoint", flat=True))
    # The host itself too: with its address cleared, its sync removes its devices (no address: no layout).
    transaction.on_commit(lambda: hosts_sync_send(peers | {name}))


def host_networks_leave(*, host: Host) -> list[int]:
    """The host is being removed: it leaves every network it held (its DHCP addresses go back to the subnets,
    the remaining holders drop it from their forwarding entries); the networks' ids."""
    name = host.endpoint.name
    networks = sorted(NetworkDeployment.objects.filter(endpoint=name).values_list("network_id", flat=True))
    for network_id in networks:
        network_services.deployment_forget(network_id=network_id, endpoint=name)
        network_left(network_id=network_id, endpoints=[name])
    return networks


def hosts_network_sync_send() -> list[str]:
    """The periodic repair (beat): every host with a data address syncs."""
    return hosts_sync_send(
        list(Host.objects.filter(data_address__isnull=False).values_list("endpoint__name", flat=True))
    )

"""Router networks on registered compute nodes: gateway, SNAT, elastic IPs and port forwards on a network node.

A registered host (``host_add``, with a management address) never has its host firewall edited by the
portal. Its router networks' gateways live on the network node of its cluster (else of its site):
the host flagged ``is_network_node`` (``host_add --network-node``, the host page). There, per router
network, the node's agent keeps a namespace of the network's own (compute/drivers/gateway.py) with
the subnet's gateway IP on a leg into the network's bridge, SNAT out of the node, and the DNAT of
elastic IPs and port forwards.

- The portal asks (``gateways_request``: the task ``compute.tasks.edge.edge_sync`` on the node's
  queue ``host.<name>``) and marks the elastic IPs and forwards concerned as waiting for that agent
  (``apply_note``); a node whose agent is down keeps the request queued and the rows waiting.
- The agent computes everything from the database on the node itself (``edge_sync``): which
  networks have desktops on the hosts it serves, which elastic IPs and forwards go to them; it
  converges its namespaces, removes those nobody wants, and records each row as applied on it
  or why not. It refuses to run for another host's name.
"""

from __future__ import annotations

import ipaddress
import logging
import os

from django.db.models import Q
from django.utils.translation import gettext as _

from compute.drivers import gateway as gw
from compute.drivers.base import DriverError
from compute.models import Desktop, Endpoint, Host
from compute.networking.specs import BOUND_STATES, bridge_name
from network.models import Address, Network

log = logging.getLogger(__name__)

# The name of the host whose agent this process is (set by ``manage.py host_agent``); "" elsewhere.
AGENT_ENV = "CAMPUSCLOUD_AGENT_HOST"


def _agent_hosts() -> dict[int, Host]:
    """Every registered host (one with a management address), by endpoint id."""
    return {h.endpoint_id: h for h in Host.objects.filter(address__isnull=False).select_related("endpoint")}


def _nodes_by_scope(hosts: dict[int, Host]) -> tuple[dict[int, Host], dict[int, Host]]:
    """The network node of each cluster and of each site (the first flagged host of each)."""
    by_cluster: dict[int, Host] = {}
    by_site: dict[int, Host] = {}
    for host in sorted(hosts.values(), key=lambda h: h.pk):
        if host.is_network_node:
            by_cluster.setdefault(host.endpoint.cluster_id, host)
            by_site.setdefault(host.endpoint.site_id, host)
    return by_cluster, by_site


def is_agent_host(endpoint: Endpoint) -> bool:
    """Whether the endpoint is a registered compute node, whose firewall only its agents touch."""
    return Host.objects.filter(endpoint=endpoint, address__isnull=False).exists()


def network_node_for(endpoint: Endpoint) -> Host | None:
    """The network node serving a registered host's desktops: of its cluster, else of its site."""
    hosts = _agent_hosts()
    by_cluster, by_site = _nodes_by_scope(hosts)
    return by_cluster.get(endpoint.cluster_id) or by_site.get(endpoint.site_id)


def served_endpoints(node: Host) -> list[int]:
    """The endpoints (ids) whose router networks the network node ``node`` serves."""
    hosts = _agent_hosts()
    by_cluster, by_site = _nodes_by_scope(hosts)
    served = []
    for endpoint_id, host in hosts.items():
        chosen = by_cluster.get(host.endpoint.cluster_id) or by_site.get(host.endpoint.site_id)
        if chosen is not None and chosen.pk == node.pk:
            served.append(endpoint_id)
    return served


def waiting_note(node: Host) -> str:
    if node.agent_alive:
        return _("等待主机代理（网络节点 %(host)s）") % {"host": node.name}
    return _("等待主机代理（网络节点 %(host)s 代理离线）") % {"host": node.name}


def no_node_note(endpoint: Endpoint) -> str:
    return _("站点 %(site)s 没有网络节点：用 host_add --network-node 或在主机页面指定一台") % {
        "site": endpoint.site.slug
    }


def gateways_request(*, nodes: list[Host] | None = None, expires: float | None = None) -> list[str]:
    """Ask network nodes' agents (all by default) to converge their gateways; the names asked."""
    from compute.tasks.edge import edge_sync

    if nodes is None:
        nodes = list(Host.objects.filter(is_network_node=True, address__isnull=False).select_related("endpoint"))
    options = {"expires": expires} if expires else {}
    for node in nodes:
        edge_sync.apply_async(args=[node.endpoint.name], queue=node.queue, **options)
    return [node.endpoint.name for node in nodes]


def gateways_request_for(endpoint: Endpoint) -> list[str]:
    """A desktop's network was prepared on ``endpoint``: its network node (if it is a registered host
    with one) makes the gateway, so the desktop reaches the outside without waiting for the sync."""
    node = network_node_for(endpoint) if is_agent_host(endpoint) else None
    return gateways_request(nodes=[node]) if node is not None else []


# ---- on the agent of the network node -----------------------------------------------------


def _router_networks(endpoint_ids: list[int]) -> dict[int, Network]:
    """The router networks with a NIC of a desktop on the served endpoints."""
    desktops = Desktop.objects.filter(endpoint_id__in=endpoint_ids, state__in=BOUND_STATES).values_list("pk", flat=True)
    addresses = Address.objects.filter(
        desktop_id__in=list(desktops),
        kind=Address.Kind.NIC,
        state=Address.State.ALLOCATED,
        subnet__network__kind=Network.Kind.ROUTER,
    ).select_related("subnet__network")
    return {a.subnet.network_id: a.subnet.network for a in addresses}


def _gateway_of(network: Network) -> str:
    subnet = network.subnets.order_by("id").first()
    if subnet is None:
        return ""
    prefix = ipaddress.IPv4Network(subnet.cidr, strict=False).prefixlen
    return f"{subnet.gateway}/{prefix}"


def edge_plan(node: Host) -> tuple[list[gw.GatewaySpec], list, dict[int, str]]:
    """What the network node should hold: a gateway per router network of the hosts it serves,
    the elastic IPs and forwards into them, and the rows that cannot be anywhere (row → note)."""
    from compute.networking.forwarding import wanted_of
    from network.models import ElasticIP

    endpoint_ids = served_endpoints(node)
    networks = _router_networks(endpoint_ids)
    eips = ElasticIP.objects.filter(
        Q(address__desktop_id__isnull=False) | Q(port_forwards__isnull=False)
    ).select_related("address__subnet__network")
    wanted = [w for w in wanted_of(eips.distinct().order_by("pk")) if w.endpoint and w.endpoint.pk in endpoint_ids]
    forwards: dict[int, list] = {}
    routed: dict[str, int] = {}  # public address -> the network it is routed into
    refused: dict[int, str] = {}
    for each in wanted:
        if each.spec is None:
            continue
        network_id = each.network.pk
        networks.setdefault(network_id, each.network)
        if routed.setdefault(each.spec.public_ip, network_id) != network_id:
            refused[id(each)] = "this public address already forwards into another network"
            continue
        forwards.setdefault(network_id, []).append(each.spec)
    specs = []
    for network_id, network in sorted(networks.items()):
        gateway = _gateway_of(network)
        if gateway:
            specs.append(
                gw.GatewaySpec(
                    index=network_id,
                    bridge=bridge_name(network, node.endpoint),
                    gateway=gateway,
                    uplink_source=node.address,
                    forwards=tuple(forwards.get(network_id, ())),
                )
            )
    return specs, wanted, refused


def _converge(specs: list[gw.GatewaySpec], report: dict) -> dict[int, str]:
    """Apply each gateway, remove the ones nobody wants; the error of each failed network."""
    failed: dict[int, str] = {}
    for spec in specs:
        try:
            outcome = gw.gateway_apply(spec)
        except DriverError as exc:
            failed[spec.index] = exc.message
            report["errors"].append(f"network {spec.index}: {exc.message}")
            continue
        if outcome != "unchanged":
            report[outcome].append(spec.index)
    for index in sorted(gw.namespaces() - {s.index for s in specs}):
        try:
            if gw.gateway_remove(index):
                report["removed"].append(index)
        except DriverError as exc:
            report["errors"].append(f"network {index}: {exc.message}")
    return failed


def _bridges_ensure(node: Host | None, specs: list[gw.GatewaySpec], report: dict) -> None:
    """The network node holds the bridge of every router network it is the gateway of: on a node
    with a data address that bridge joins the network's VXLAN (the desktops may all be on other
    hosts), so the gateway's leg reaches them. Defined through the node's own libvirtd."""
    from compute.networking.bindings import network_ensure_on
    from compute.networking.overlay import span_spec

    if node is None or not specs:
        return
    for network in Network.objects.filter(pk__in=[spec.index for spec in specs]).order_by("pk"):
        if span_spec(network, node.endpoint) is None:
            continue  # no data address: the node's own desktops' network is already here, or none is
        try:
            network_ensure_on(network=network, endpoint=node.endpoint)
        except DriverError as exc:
            report["errors"].append(f"network {network.pk}: {exc.message}")


def edge_sync(*, host_name: str) -> dict:
    """On the network node's agent: converge this host's gateways with the database and record on
    every elastic IP and port forward into them whether it is applied here, or why not.

    Returns {"added", "changed", "removed": [network ids], "errors": [...]}."""
    from compute.networking.forwarding import record

    here = os.environ.get(AGENT_ENV, "")
    if here != host_name:
        # Never on the wrong host: this process is not that host's agent.
        raise DriverError(
            f"edge_sync for {host_name!r} refused: this process is the agent of {here or 'no host'}", permanent=True
        )
    node = Host.objects.select_related("endpoint").filter(endpoint__name=host_name).first()
    report = {"added": [], "changed": [], "removed": [], "errors": []}
    if node is None or not node.is_network_node or not node.address:
        specs, wanted, refused = [], [], {}
    else:
        specs, wanted, refused = edge_plan(node)
    _bridges_ensure(node, specs, report)
    failed = _converge(specs, report)
    for each in wanted:
        if each.spec is None:
            continue  # forwarding_apply recorded why
        note = refused.get(id(each)) or failed.get(each.network.pk, "")
        record(each, endpoint="" if note else node.endpoint.name, note=note)
    if any(report[k] for k in ("added", "changed", "removed")) or report["errors"]:
        log.info("edge sync on %s: %s", host_name, report)
    return report

"""Elastic IPs and port forwards in the host firewall.

An elastic IP bound to a NIC is a 1:1 NAT (the key ``eip-<id>``); a port forward is a DNAT of
one public port (``eip-<id>-pf-<id>``), for NICs on router (NAT) networks. Where they land:

- a desktop on a local ``qemu:///system`` endpoint: that host's firewall, by the portal's worker
  (compute/drivers/hostfw.py), as before;
- a desktop on a registered compute node (``host_add``): the gateway namespace of its network on
  the network node of its cluster or site, by that node's agent (compute/networking/gateway.py);
  the portal only asks, and the rows say they wait for that agent until it has applied them.

The database says what should be where; ``forwarding_apply`` converges one elastic IP after a
change, ``forwarding_sync`` every host, periodically."""

import dataclasses
import logging

from django.db import transaction

from audit.actions import Action
from audit.services import event_record
from compute.drivers.base import (
    DriverError,
    ForwardSpec,
)
from compute.drivers.hostfw import is_local_uri
from compute.hypervisor import driver_error_note, driver_for
from compute.models import Desktop, Endpoint, Host
from compute.networking import gateway
from compute.networking.specs import BOUND_STATES, bridge_name, is_libvirt
from network import services as network_services
from network.models import Address, Network

log = logging.getLogger(__name__)

# A periodic repair request (forwarding_sync) not taken by a network node's agent within this time is
# dropped; requests made for a change (forwarding_apply) wait for the agent however long it takes.
SYNC_REQUEST_EXPIRES = 240


def eip_key(eip_id: int) -> str:
    return f"eip-{eip_id}"


def forward_key(eip_id: int, forward_id: int) -> str:
    return f"eip-{eip_id}-pf-{forward_id}"


def _belongs_to(key: str, eip_id: int) -> bool:
    return key == eip_key(eip_id) or key.startswith(f"{eip_key(eip_id)}-")


@dataclasses.dataclass
class _Wanted:
    """Where one elastic IP's NAT or one port forward should be, or why it cannot be anywhere."""

    row: object  # ElasticIP or PortForward
    endpoint: Endpoint | None = None
    spec: ForwardSpec | None = None
    note: str = ""
    network: Network | None = None

    @property
    def key(self) -> str:
        return self.spec.key if self.spec else ""


def _forwarding_hosts() -> list[Endpoint]:
    """The endpoints whose host firewall the portal programs (this machine's own daemon)."""
    return [e for e in Endpoint.objects.filter(kind=Endpoint.Kind.LIBVIRT, is_active=True) if is_local_uri(e.url)]


def wanted_of(eips) -> list[_Wanted]:
    """What each elastic IP (bound NIC) and each of its forwards needs, from the database alone."""
    from network.models import PortForward

    eips = list(eips)
    forwards = list(
        PortForward.objects.filter(elastic_ip__in=eips)
        .select_related("address__subnet__network")
        .order_by("elastic_ip_id", "pk")
    )
    targets = [e.address for e in eips if e.address_id] + [f.address for f in forwards]
    desktops = Desktop.objects.filter(
        pk__in={a.desktop_id for a in targets if a.desktop_id}, state__in=BOUND_STATES
    ).select_related("endpoint")
    where = {d.pk: d.endpoint for d in desktops}
    by_eip = {e.pk: e for e in eips}

    def place(row, address, **spec) -> _Wanted:
        if address.state != Address.State.ALLOCATED or address.kind != Address.Kind.NIC:
            return _Wanted(row, note="the target NIC was released")
        endpoint = where.get(address.desktop_id)
        if endpoint is None:
            return _Wanted(row, note="the target desktop is not on any endpoint")
        network = address.subnet.network
        if not is_libvirt(endpoint):
            return _Wanted(row, endpoint, note="vCenter endpoints: forward on the campus firewall, not by the portal")
        if network.kind != Network.Kind.ROUTER:
            return _Wanted(row, endpoint, note="only router (NAT) networks are forwarded by the host firewall")
        return _Wanted(
            row,
            endpoint,
            ForwardSpec(private_ip=address.ip, bridge=bridge_name(network, endpoint), **spec),
            network=network,
        )

    wanted = []
    for eip in eips:
        if eip.address_id:
            wanted.append(
                place(eip, eip.address, key=eip_key(eip.pk), public_ip=eip.ip, private_cidr=eip.address.subnet.cidr)
            )
    for forward in forwards:
        wanted.append(
            place(
                forward,
                forward.address,
                key=forward_key(forward.elastic_ip_id, forward.pk),
                public_ip=by_eip[forward.elastic_ip_id].ip,
                protocol=forward.protocol,
                public_port=forward.public_port,
                private_port=forward.private_port,
            )
        )
    return wanted


def record(wanted: _Wanted, *, endpoint: str, note: str = "") -> None:
    from network.models import ElasticIP

    if isinstance(wanted.row, ElasticIP):
        network_services.elastic_ip_applied(eip_id=wanted.row.pk, endpoint=endpoint, note=note)
    else:
        network_services.port_forward_applied(forward_id=wanted.row.pk, endpoint=endpoint, note=note)


def _to_agent(each: _Wanted, agents: dict[int, Host], report: dict, *, repair: bool) -> None:
    """A registered host's forward: its network node's agent applies it; the row waits until then
    (a periodic ``repair`` leaves a row applied on that node as it is: nothing changed for it)."""
    node = gateway.network_node_for(each.endpoint)
    if node is None:
        note = gateway.no_node_note(each.endpoint)
        record(each, endpoint="", note=note)
        report["errors"].append(f"{each.endpoint.name}: {note}")
        return
    agents[node.pk] = node
    if repair and each.row.applied and each.row.applied_to == node.endpoint.name:
        return
    record(each, endpoint="", note=gateway.waiting_note(node))
    report["waiting"].append({"endpoint": node.endpoint.name, "key": each.key})


def _put(wanted: list[_Wanted], report: dict, agents: dict[int, Host], *, repair: bool = False) -> None:
    """Put each wanted rule set on its host (or ask its network node's agent) and record it on its row."""
    registered: dict[int, bool] = {}
    for each in wanted:
        if each.spec is None:
            record(each, endpoint="", note=each.note)
            continue
        if registered.setdefault(each.endpoint.pk, gateway.is_agent_host(each.endpoint)):
            _to_agent(each, agents, report, repair=repair)
            continue
        try:
            outcome = driver_for(each.endpoint).forward_set(each.spec)
        except DriverError as exc:
            driver_error_note(each.endpoint, exc)
            record(each, endpoint="", note=exc.message)
            report["errors"].append(f"{each.endpoint.name}: {exc.message}")
            continue
        record(each, endpoint=each.endpoint.name)
        if outcome in ("added", "changed"):
            report[outcome].append({"endpoint": each.endpoint.name, "key": each.key})


def _take_off(endpoint: Endpoint, keep, report: dict) -> None:
    """Remove the forwards on ``endpoint``'s host that ``keep(key)`` refuses (deleted, moved, unbound)."""
    try:
        driver = driver_for(endpoint)
        for key in sorted(driver.forward_keys()):
            if not keep(key):
                driver.forward_remove(key)
                report["removed"].append({"endpoint": endpoint.name, "key": key})
    except DriverError as exc:
        driver_error_note(endpoint, exc)
        report["errors"].append(f"{endpoint.name}: {exc.message}")


def _new_report() -> dict:
    return {"added": [], "changed": [], "removed": [], "errors": []}


def _ask_agents(agents: dict[int, Host], report: dict, *, expires: float | None = None) -> None:
    """Every network node converges (the ones named by ``agents`` must: a forward waits for them);
    a node that held a forward which went elsewhere or away takes it off the same way."""
    flagged = Host.objects.filter(is_network_node=True, address__isnull=False).select_related("endpoint")
    nodes = {n.pk: n for n in flagged}
    nodes.update(agents)
    if nodes:
        gateway.gateways_request(nodes=list(nodes.values()), expires=expires)


def forwarding_apply(*, eip_id: int) -> dict:
    """Converge one elastic IP: its 1:1 NAT and its port forwards on the hosts of their desktops,
    and nothing of it anywhere else (a deleted forward, an unbound NIC, a desktop that moved).

    Idempotent. Returns {"added", "changed", "removed": [{"endpoint", "key"}], "errors"}; every
    row says whether it is applied, where, or why not (``apply_note``). Forwards of registered
    hosts are asked of their network node's agent: listed under "waiting", not applied yet.
    """
    from network.models import ElasticIP

    eip = ElasticIP.objects.select_related("address__subnet__network").filter(pk=eip_id).first()
    wanted = wanted_of([eip]) if eip is not None else []
    report = _new_report()
    report["waiting"] = []
    agents: dict[int, Host] = {}
    _put(wanted, report, agents)
    placed = {(w.endpoint.pk, w.key) for w in wanted if w.spec is not None}
    for endpoint in _forwarding_hosts():
        _take_off(endpoint, lambda key, pk=endpoint.pk: not _belongs_to(key, eip_id) or (pk, key) in placed, report)
    _ask_agents(agents, report)
    if not report["waiting"]:
        del report["waiting"]
    return report


def eips_of_desktop(desktop_id: int) -> set[int]:
    """The elastic IPs bound to the desktop's NICs or forwarding a port to one of them."""
    from network.models import ElasticIP

    bound = ElasticIP.objects.filter(address__desktop_id=desktop_id).values_list("pk", flat=True)
    forwarding = ElasticIP.objects.filter(port_forwards__address__desktop_id=desktop_id).values_list("pk", flat=True)
    return set(bound) | set(forwarding)


def forwarding_of_desktop_apply(*, desktop_id: int) -> dict:
    """The desktop moved: every elastic IP bound or forwarding to its NICs follows it."""
    report = _new_report()
    for eip_id in sorted(eips_of_desktop(desktop_id)):
        for key, value in forwarding_apply(eip_id=eip_id).items():
            report.setdefault(key, [])
            report[key] += value
    return report


def forwarding_sync() -> dict:
    """The periodic repair of host firewalls: every forward the database wants is in place (missing
    or altered rules put back), and every campus rule it does not want is removed.

    Returns {"added", "changed", "removed": counts, "errors": [...]}; a change is audited.
    """
    from network.models import ElasticIP

    wanted = wanted_of(ElasticIP.objects.select_related("address__subnet__network").order_by("pk"))
    report = _new_report()
    report["waiting"] = []
    agents: dict[int, Host] = {}
    _put(wanted, report, agents, repair=True)
    placed = {(w.endpoint.pk, w.key) for w in wanted if w.spec is not None}
    for endpoint in _forwarding_hosts():
        _take_off(endpoint, lambda key, pk=endpoint.pk: (pk, key) in placed, report)
    # Network nodes also repair gateways without any forward; a request nobody takes in time is dropped
    # (the next sync sends another).
    _ask_agents(agents, report, expires=SYNC_REQUEST_EXPIRES)
    counts = {k: len(report[k]) for k in ("added", "changed", "removed")}
    if any(counts.values()):
        with transaction.atomic():
            event_record(action=Action.PORT_FORWARD_CHANGED, detail={"op": "forwarding_synced", **report})
        log.info("forwarding sync: %s", counts)
    return {**counts, "errors": report["errors"]}

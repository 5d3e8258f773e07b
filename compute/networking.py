"""Network orchestration: pushes network's data (networks, IP/MAC bindings, security groups) to hypervisors.

network/ holds the data and rules; compute makes every hypervisor call (shared/STYLE.md),
so this module turns network's rows into driver calls:

- ``desktop_nics_allocate(desktop)`` at desktop creation: IP and MAC from network's IPAM;
- ``desktop_network_prepare(desktop, driver)`` before the VM is created on its endpoint:
  the libvirt network, the nwfilters and the DHCP host entries there, and the NicSpecs;
- ``desktop_bindings_push(desktop)`` wherever the desktop runs now (after an evacuation
  or migration the binding follows it, from the database alone; the old host's entry is
  removed when that host answers, else by the next sync);
- ``desktop_bindings_release(desktop)`` when it is deleted;
- ``dhcp_sync()`` the periodic repair: each endpoint's DHCP hosts are compared with what
  the database says should be there, missing ones added, stale ones removed, all reported;
- ``security_group_apply(group)`` redefines the group's nwfilter wherever it is used
  (libvirt updates running VMs live);
- ``forwarding_apply(eip)`` elastic IPs and port forwards in the host firewall of the target
  desktop's endpoint (NAT networks on the portal's own host), ``forwarding_sync()`` repairing them.

Where the desktop runs is compute's knowledge (``Desktop.endpoint``); which endpoints
hold which network is network's (``NetworkDeployment``). libvirt object names carry an
endpoint-configurable prefix (options ``network_prefix``, ``bridge_prefix``,
``filter_prefix``, and ``firewall_prefix`` for the host-firewall chains) so that several
endpoints can share one test daemon.
"""

import dataclasses
import logging
import uuid

from django.db import transaction

from audit.actions import Action
from audit.services import event_record
from common.errors import ServiceError
from common.tasks import enqueue
from compute import hooks as compute_hooks
from compute import locks
from compute.drivers.base import (
    DhcpHost,
    DriverError,
    ErrorCode,
    FirewallRule,
    ForwardMode,
    ForwardSpec,
    HypervisorDriver,
    NetworkSpec,
    NicSpec,
    NwFilterSpec,
)
from compute.drivers.hostfw import is_local_uri
from compute.hypervisor import driver_error_note, driver_for, vm_spec
from compute.models import Desktop, Endpoint
from network import hooks
from network import selectors as network_selectors
from network import services as network_services
from network.models import Address, Network, NetworkDeployment, SecurityGroup, SegmentType

log = logging.getLogger(__name__)

NETWORK_PREFIX = "ccnet-"
BRIDGE_PREFIX = "ccbr"
FILTER_PREFIX = "cc-fw-"
# Desktops whose VM exists (or is being made) on their endpoint: their bindings belong there.
BOUND_STATES = [s for s in Desktop.State.values if s != Desktop.State.DELETED]


# --- names and specs ----------------------------------------------------------------------------


def _is_libvirt(endpoint: Endpoint) -> bool:
    return endpoint.kind == Endpoint.Kind.LIBVIRT


def filters_supported(endpoint: Endpoint) -> bool:
    """nwfilters need a real libvirtd: libvirt's test driver and vCenter have none."""
    return _is_libvirt(endpoint) and not endpoint.url.startswith("test:")


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
    if _is_libvirt(endpoint):
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


def _dhcp_host(address: Address) -> DhcpHost:
    return DhcpHost(mac=address.mac, ip=address.ip, name=address.hostname)


def _has_dhcp(network: Network) -> bool:
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
    """The NIC's filter on the endpoint: its group's rules under a name and UUID of the NIC's own."""
    name = filter_name(address, endpoint)
    # Stable across redefinitions (libvirt then updates the running VM) and distinct per endpoint,
    # as two endpoints may share one daemon (tests do).
    filter_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"campuscloud:{endpoint.name}:{name}")
    if rules is None:
        rules = group_rules(address.security_group)
    return NwFilterSpec(name=name, uuid=str(filter_uuid), rules=rules)


# --- desktops ---------------------------------------------------------------------------------


def desktop_addresses(desktop: Desktop) -> list[Address]:
    return list(
        Address.objects.filter(desktop_id=desktop.pk, state=Address.State.ALLOCATED, kind=Address.Kind.NIC)
        .select_related("subnet__network", "security_group__tenant")
        .order_by("nic_index")
    )


def desktop_nics_allocate(
    *, desktop: Desktop, network: Network | None = None, security_group: SecurityGroup | None = None
) -> list[Address]:
    """Give a new desktop its NIC's IP and MAC (its tenant's network, else a shared one).

    Runs inside compute's desktop_create transaction; a desktop without any network to
    join keeps the endpoint's default network (no binding), as before networks existed.
    """
    network = network or network_selectors.default_network_for(desktop.tenant)
    if network is None:
        return []
    address = network_services.address_allocate(
        tenant=desktop.tenant,
        desktop_id=desktop.pk,
        network=network,
        owner=desktop.owner,
        hostname=desktop.vm_name,
        security_group=security_group,
    )
    Desktop.objects.filter(pk=desktop.pk).update(mac=address.mac, guest_ip=address.ip)
    desktop.mac, desktop.guest_ip = address.mac, address.ip
    _dhcp_mark([address], desktop.endpoint)
    return [address]


def _dhcp_mark(addresses: list[Address], endpoint: Endpoint) -> None:
    """Say on the NICs whether the portal's DHCP serves them where their desktop is: vCenter has no
    DHCP service, so nothing is pushed there and the API and pages say so instead of nothing."""
    dhcp = Address.Dhcp.PORTAL if _is_libvirt(endpoint) else Address.Dhcp.VCENTER
    network_services.addresses_dhcp_set(address_ids=[a.pk for a in addresses], dhcp=dhcp)
    for address in addresses:
        address.dhcp = dhcp


def nic_specs(desktop: Desktop, addresses: list[Address] | None = None) -> tuple[NicSpec, ...]:
    """The desktop's NICs for its VMSpec. vCenter only takes MACs of VMware's own range, so there it
    picks the MAC and ``desktop_nics_observed`` records it."""
    addresses = desktop_addresses(desktop) if addresses is None else addresses
    endpoint = desktop.endpoint
    with_filters = filters_supported(endpoint)
    return tuple(
        NicSpec(
            network=nic_network_name(a.subnet.network, endpoint),
            mac=a.mac if _is_libvirt(endpoint) else "",
            nwfilter=filter_name(a, endpoint) if with_filters and a.security_group_id else "",
            filter_params={"IP": a.ip} if with_filters and a.security_group_id else {},
        )
        for a in addresses
    )


def desktop_nics_observed(*, desktop: Desktop, nics) -> None:
    """The VM exists: NICs whose MAC the hypervisor chose (vCenter) take that MAC in the database."""
    for address, nic in zip(desktop_addresses(desktop), nics, strict=False):
        if nic.mac and nic.mac.lower() != address.mac:
            Address.objects.filter(pk=address.pk).update(mac=nic.mac.lower())


def network_ensure_on(*, network: Network, endpoint: Endpoint, driver: HypervisorDriver | None = None) -> str:
    """Make the network exist (defined, started, autostarted) on a libvirt endpoint; returns its name there."""
    name = libvirt_network_name(network, endpoint)
    if not _is_libvirt(endpoint):
        return nic_network_name(network, endpoint)
    driver = driver or driver_for(endpoint)
    # Concurrent callers (threads, worker processes, hosts) need no lock of ours: the driver's
    # ensure takes a define or start that another caller won as done.
    driver.network_ensure(network_spec(network, endpoint))
    network_services.deployment_record(network_id=network.pk, endpoint=endpoint.name)
    return name


def _define_filters(addresses: list[Address], endpoint: Endpoint, driver: HypervisorDriver) -> int:
    """Define the NICs' filters on the endpoint (each group's rules computed once); returns how many."""
    if not filters_supported(endpoint):
        return 0
    rules: dict[int, tuple[FirewallRule, ...]] = {}
    count = 0
    for address in addresses:
        if not address.security_group_id:
            continue
        if address.security_group_id not in rules:
            rules[address.security_group_id] = group_rules(address.security_group)
        driver.nwfilter_define(nwfilter_spec(address, endpoint, rules[address.security_group_id]))
        count += 1
    return count


def desktop_network_prepare(*, desktop: Desktop, driver: HypervisorDriver) -> tuple[NicSpec, ...]:
    """Before the VM is created on ``desktop.endpoint``: its networks, filters and DHCP entries
    there; returns the NicSpecs for the VMSpec (empty: the desktop has no allocation)."""
    addresses = desktop_addresses(desktop)
    if not addresses:
        return ()
    endpoint = desktop.endpoint
    _dhcp_mark(addresses, endpoint)
    if _is_libvirt(endpoint):
        networks = {a.subnet.network_id: a.subnet.network for a in addresses}
        for network in networks.values():
            network_ensure_on(network=network, endpoint=endpoint, driver=driver)
        _define_filters(addresses, endpoint, driver)
        _push(addresses, endpoint, driver)
    return nic_specs(desktop, addresses)


def _push(addresses: list[Address], endpoint: Endpoint, driver: HypervisorDriver) -> list[Address]:
    pushed = []
    for address in addresses:
        network = address.subnet.network
        if not _has_dhcp(network):
            continue
        driver.dhcp_host_set(libvirt_network_name(network, endpoint), _dhcp_host(address))
        pushed.append(address)
    network_services.address_pushed(address_ids=[a.pk for a in pushed], endpoint=endpoint.name)
    return pushed


def _remove_from(endpoint_name: str, addresses: list[Address]) -> str:
    """Remove the bindings from an endpoint's DHCP; returns "" or why it could not (the sync retries)."""
    endpoint = Endpoint.objects.filter(name=endpoint_name).first()
    if endpoint is None or not _is_libvirt(endpoint):
        return ""
    try:
        driver = driver_for(endpoint)
        for address in addresses:
            if _has_dhcp(address.subnet.network):
                driver.dhcp_host_remove(libvirt_network_name(address.subnet.network, endpoint), address.mac)
    except DriverError as exc:
        driver_error_note(endpoint, exc)
        if exc.code == ErrorCode.NOT_FOUND:
            return ""
        log.warning("bindings stay on %s until the next sync: %s", endpoint_name, exc)
        return exc.message
    return ""


def desktop_bindings_push(*, desktop: Desktop, driver: HypervisorDriver | None = None) -> dict:
    """Push the desktop's bindings to the endpoint it runs on now, from the database alone, and take
    them off the endpoint they were on before (when it answers; otherwise the sync does it later).

    This is the failover path: after compute restarts a desktop on host B, B's DHCP gives the
    VM the same IP for the same MAC.
    """
    desktop = Desktop.objects.select_related("endpoint", "tenant").get(pk=desktop.pk)
    addresses = desktop_addresses(desktop)
    endpoint = desktop.endpoint
    report = {"endpoint": endpoint.name, "pushed": [], "removed_from": {}, "pending": {}}
    if not addresses:
        return report
    _dhcp_mark(addresses, endpoint)
    previous: dict[str, list[Address]] = {}
    for address in addresses:
        if address.pushed_to and address.pushed_to != endpoint.name:
            previous.setdefault(address.pushed_to, []).append(address)
    if _is_libvirt(endpoint):
        driver = driver or driver_for(endpoint)
        for network in {a.subnet.network_id: a.subnet.network for a in addresses}.values():
            network_ensure_on(network=network, endpoint=endpoint, driver=driver)
        _define_filters(addresses, endpoint, driver)
        report["pushed"] = [a.mac for a in _push(addresses, endpoint, driver)]
    for old, moved in previous.items():
        error = _remove_from(old, moved)
        if error:
            report["pending"][old] = error
        else:
            report["removed_from"][old] = [a.mac for a in moved]
    if previous:
        # Its elastic IPs and port forwards follow it to the new host's firewall.
        report["forwarding"] = forwarding_of_desktop_apply(desktop_id=desktop.pk)
        with transaction.atomic():
            event_record(
                action=Action.BINDINGS_MOVED,
                target=desktop,
                tenant=desktop.tenant,
                detail={"op": "bindings_moved", **report},
            )
    return report


def desktop_bindings_release(*, desktop: Desktop, hold: int | None = None) -> list[Address]:
    """The desktop is deleted: its bindings leave its endpoint's DHCP and its addresses are held."""
    addresses = desktop_addresses(desktop)
    by_endpoint: dict[str, list[Address]] = {}
    for address in addresses:
        by_endpoint.setdefault(address.pushed_to or desktop.endpoint.name, []).append(address)
    for endpoint_name, group in by_endpoint.items():
        _remove_from(endpoint_name, group)
        _filters_remove(endpoint_name, group)
    eip_ids = _eips_of_desktop(desktop.pk)
    released = network_services.addresses_release(desktop_id=desktop.pk, hold=hold)
    # Its elastic IPs were unbound and its forwards lost their target: off the host firewall.
    for eip_id in sorted(eip_ids):
        forwarding_apply(eip_id=eip_id)
    return released


def desktop_failover(*, desktop: Desktop, target: Endpoint) -> dict:
    """Restart a desktop whose endpoint is down on ``target``, keeping its MAC and IP.

    The database alone says what the desktop is (its VMSpec, its NICs): the row moves to
    ``target``, the bindings are pushed to the target's DHCP (and taken off the old
    endpoint when it answers, else by the sync once it is back), and the VM is created
    there from the golden image with the same NICs. The golden image must be in a pool of
    the same name on ``target`` (shared storage, or a copy per host).
    """
    with transaction.atomic():
        row = locks.desktop_lock(desktop.pk)
        source = row.endpoint.name
        row.endpoint = target
        row.host = target.hosts.order_by("pk").first()
        row.save(update_fields=["endpoint", "host", "updated_at"])
        event_record(
            action=Action.NETWORK_CHANGED,
            target=row,
            tenant=row.tenant,
            detail={"op": "desktop_failover", "from": source, "to": target.name},
        )
    row = Desktop.objects.select_related("endpoint__site", "tenant", "image_version", "flavor__gpu_profile").get(
        pk=desktop.pk
    )
    driver = driver_for(target)
    bindings = desktop_bindings_push(desktop=row, driver=driver)
    info = driver.create_vm(with_nics(vm_spec(row), nic_specs(row)), start=True)
    Desktop.objects.filter(pk=row.pk).update(
        vm_uuid=info.uuid, vnc_host=info.vnc_host, vnc_port=info.vnc_port, power_state=Desktop.Power.RUNNING
    )
    return {"from": source, "to": target.name, "bindings": bindings, "mac": info.nics[0].mac if info.nics else ""}


# --- the periodic DHCP sync -------------------------------------------------------------------


def _desired(endpoint: Endpoint) -> dict[int, dict[str, DhcpHost]]:
    """{network id: {mac: host}} this endpoint's DHCP should hold, from the database alone."""
    desktop_ids = Desktop.objects.filter(endpoint=endpoint, state__in=BOUND_STATES).values_list("pk", flat=True)
    wanted: dict[int, dict[str, DhcpHost]] = {}
    nics = Address.objects.filter(
        desktop_id__in=list(desktop_ids), state=Address.State.ALLOCATED, kind=Address.Kind.NIC
    ).select_related("subnet__network")
    for address in nics:
        if _has_dhcp(address.subnet.network):
            wanted.setdefault(address.subnet.network_id, {})[address.mac] = _dhcp_host(address)
    deployed = NetworkDeployment.objects.filter(endpoint=endpoint.name).values_list("network_id", flat=True)
    reserved = Address.objects.filter(
        kind=Address.Kind.RESERVED, mac__isnull=False, subnet__network_id__in=list(deployed)
    ).select_related("subnet__network")
    for address in reserved:
        if _has_dhcp(address.subnet.network):
            wanted.setdefault(address.subnet.network_id, {})[address.mac] = _dhcp_host(address)
    return wanted


def _sync_endpoint(endpoint: Endpoint) -> dict:
    result = {"added": [], "changed": [], "removed": [], "errors": []}
    wanted = _desired(endpoint)
    deployed = set(NetworkDeployment.objects.filter(endpoint=endpoint.name).values_list("network_id", flat=True))
    networks = Network.objects.in_bulk(deployed | set(wanted))
    try:
        driver = driver_for(endpoint)
        for network_id, network in sorted(networks.items()):
            if not _has_dhcp(network):
                continue
            name = libvirt_network_name(network, endpoint)
            desired = wanted.get(network_id, {})
            try:
                actual = {h.mac: h for h in driver.dhcp_hosts(name)}
            except DriverError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    raise
                if not desired:
                    network_services.deployment_forget(network_id=network_id, endpoint=endpoint.name)
                    continue
                network_ensure_on(network=network, endpoint=endpoint, driver=driver)
                actual = {h.mac: h for h in driver.dhcp_hosts(name)}
            for mac, host in actual.items():
                if mac not in desired:
                    driver.dhcp_host_remove(name, mac)
                    result["removed"].append({"network": name, "mac": mac, "ip": host.ip})
            for mac, host in desired.items():
                if mac not in actual:
                    driver.dhcp_host_set(name, host)
                    result["added"].append({"network": name, "mac": mac, "ip": host.ip})
                elif actual[mac] != host:
                    driver.dhcp_host_set(name, host)
                    result["changed"].append({"network": name, "mac": mac, "ip": host.ip, "was": actual[mac].ip})
            Address.objects.filter(subnet__network_id=network_id, mac__in=list(desired)).exclude(
                pushed_to=endpoint.name
            ).update(pushed_to=endpoint.name)
    except DriverError as exc:
        driver_error_note(endpoint, exc)
        result["errors"].append(exc.message)
    return result


def addresses_of_gone_desktops_release() -> int:
    """NICs still allocated to desktops that are deleted (or gone) are released: a deletion whose
    release step failed leaks nothing for longer than one sync."""
    allocated = Address.objects.filter(
        kind=Address.Kind.NIC, state=Address.State.ALLOCATED, desktop_id__isnull=False
    ).values_list("desktop_id", flat=True)
    ids = set(allocated)
    alive = set(Desktop.objects.filter(pk__in=ids, state__in=BOUND_STATES).values_list("pk", flat=True))
    for desktop_id in sorted(ids - alive):
        network_services.addresses_release(desktop_id=desktop_id)
    return len(ids - alive)


def dhcp_sync(*, endpoint: Endpoint | None = None) -> dict:
    """Repair DHCP drift on every active libvirt endpoint (or one); returns what changed.

    ``{"added", "changed", "removed", "released", "errors", "endpoints": {name: {...}}}``; a full
    sync first releases the NICs of desktops that are gone.
    An unreachable endpoint is reported and skipped; its stale entries go when it is back.
    """
    endpoints = (
        [endpoint] if endpoint is not None else Endpoint.objects.filter(kind=Endpoint.Kind.LIBVIRT, is_active=True)
    )
    report = {"added": 0, "changed": 0, "removed": 0, "released": 0, "errors": [], "endpoints": {}}
    if endpoint is None:
        report["released"] = addresses_of_gone_desktops_release()
    for each in endpoints:
        if not _is_libvirt(each):
            continue
        result = _sync_endpoint(each)
        report["endpoints"][each.name] = result
        for key in ("added", "changed", "removed"):
            report[key] += len(result[key])
        report["errors"] += [f"{each.name}: {e}" for e in result["errors"]]
    if report["added"] or report["changed"] or report["removed"]:
        with transaction.atomic():
            event_record(
                action=Action.DHCP_SYNCED,
                detail={"op": "dhcp_synced", **{k: report[k] for k in ("added", "changed", "removed", "errors")}},
            )
        log.info("DHCP sync: %s", {k: report[k] for k in ("added", "changed", "removed")})
    return report


# --- security groups --------------------------------------------------------------------------


def _nics_by_endpoint(addresses) -> dict[int, tuple[Endpoint, list[Address]]]:
    """The NICs grouped by the endpoint their desktop is on (endpoints that take nwfilters only)."""
    addresses = list(addresses)
    desktops = Desktop.objects.filter(pk__in={a.desktop_id for a in addresses}, state__in=BOUND_STATES).select_related(
        "endpoint"
    )
    where = {d.pk: d.endpoint for d in desktops if d.endpoint.is_active and filters_supported(d.endpoint)}
    grouped: dict[int, tuple[Endpoint, list[Address]]] = {}
    for address in addresses:
        endpoint = where.get(address.desktop_id)
        if endpoint is not None:
            grouped.setdefault(endpoint.pk, (endpoint, []))[1].append(address)
    return grouped


def _apply_filters(addresses) -> dict:
    report = {"applied": [], "filters": 0, "errors": []}
    for endpoint, nics in _nics_by_endpoint(addresses).values():
        try:
            report["filters"] += _define_filters(nics, endpoint, driver_for(endpoint))
            report["applied"].append(endpoint.name)
        except DriverError as exc:
            driver_error_note(endpoint, exc)
            report["errors"].append(f"{endpoint.name}: {exc.message}")
    return report


def security_group_apply(*, group: SecurityGroup) -> dict:
    """Redefine the filter of every NIC in the group, on the endpoint its desktop is on: running
    VMs get the new rules live. Returns {"applied": [endpoint names], "filters": n, "errors": [...]}."""
    nics = Address.objects.filter(
        security_group=group, state=Address.State.ALLOCATED, kind=Address.Kind.NIC
    ).select_related("security_group__tenant")
    return _apply_filters(nics)


def desktop_filters_apply(*, desktop_id: int) -> dict:
    """A NIC of the desktop changed group: its own filter is redefined with the new group's rules."""
    nics = Address.objects.filter(
        desktop_id=desktop_id, state=Address.State.ALLOCATED, kind=Address.Kind.NIC
    ).select_related("security_group__tenant")
    return _apply_filters(nics)


def security_groups_sync() -> dict:
    """Redefine every NIC filter (remote-group members and other tenants' subnets change over time)."""
    nics = Address.objects.filter(
        state=Address.State.ALLOCATED, kind=Address.Kind.NIC, security_group__isnull=False
    ).select_related("security_group__tenant")
    result = _apply_filters(nics)
    return {"applied": result["filters"], "errors": result["errors"]}


def _filters_remove(endpoint_name: str, addresses: list[Address]) -> None:
    endpoint = Endpoint.objects.filter(name=endpoint_name).first()
    if endpoint is None or not filters_supported(endpoint):
        return
    try:
        driver = driver_for(endpoint)
        for address in addresses:
            driver.nwfilter_delete(filter_name(address, endpoint))
    except DriverError as exc:
        # Still referenced (the VM is there) or unreachable: a leftover filter harms nothing.
        driver_error_note(endpoint, exc)
        log.warning("nwfilters of %s stay on %s: %s", [a.pk for a in addresses], endpoint_name, exc)


def network_remove(*, network_id: int, endpoints: list[str]) -> None:
    """The network was deleted: take its libvirt network off the endpoints that had it."""
    stub = Network(pk=network_id)
    for endpoint in Endpoint.objects.filter(name__in=endpoints, kind=Endpoint.Kind.LIBVIRT):
        try:
            driver_for(endpoint).network_delete(libvirt_network_name(stub, endpoint))
        except DriverError as exc:
            driver_error_note(endpoint, exc)
            log.warning("libvirt network %s stays on %s: %s", network_id, endpoint.name, exc)


# --- elastic IPs and port forwards ------------------------------------------------------------
#
# An elastic IP bound to a NIC is a 1:1 NAT (the key ``eip-<id>``); a port forward is a DNAT of
# one public port (``eip-<id>-pf-<id>``). Both land in the host firewall of the endpoint the
# target desktop runs on (compute/drivers/hostfw.py), for NICs on router (NAT) networks. The
# database says what should be where; ``forwarding_apply`` converges one elastic IP after a
# change, ``forwarding_sync`` every host, periodically.


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

    @property
    def key(self) -> str:
        return self.spec.key if self.spec else ""


def _forwarding_hosts() -> list[Endpoint]:
    """The endpoints whose host firewall the portal programs (this machine's own daemon)."""
    return [e for e in Endpoint.objects.filter(kind=Endpoint.Kind.LIBVIRT, is_active=True) if is_local_uri(e.url)]


def _wanted(eips) -> list[_Wanted]:
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
        if not _is_libvirt(endpoint):
            return _Wanted(row, endpoint, note="vCenter endpoints: forward on the campus firewall, not by the portal")
        if network.kind != Network.Kind.ROUTER:
            return _Wanted(row, endpoint, note="only router (NAT) networks are forwarded by the host firewall")
        return _Wanted(
            row,
            endpoint,
            ForwardSpec(private_ip=address.ip, bridge=bridge_name(network, endpoint), **spec),
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


def _record(wanted: _Wanted, *, endpoint: str, note: str = "") -> None:
    from network.models import ElasticIP

    if isinstance(wanted.row, ElasticIP):
        network_services.elastic_ip_applied(eip_id=wanted.row.pk, endpoint=endpoint, note=note)
    else:
        network_services.port_forward_applied(forward_id=wanted.row.pk, endpoint=endpoint, note=note)


def _put(wanted: list[_Wanted], report: dict) -> None:
    """Put each wanted rule set on its host and record the outcome on its row."""
    for each in wanted:
        if each.spec is None:
            _record(each, endpoint="", note=each.note)
            continue
        try:
            outcome = driver_for(each.endpoint).forward_set(each.spec)
        except DriverError as exc:
            driver_error_note(each.endpoint, exc)
            _record(each, endpoint="", note=exc.message)
            report["errors"].append(f"{each.endpoint.name}: {exc.message}")
            continue
        _record(each, endpoint=each.endpoint.name)
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


def forwarding_apply(*, eip_id: int) -> dict:
    """Converge one elastic IP: its 1:1 NAT and its port forwards on the hosts of their desktops,
    and nothing of it anywhere else (a deleted forward, an unbound NIC, a desktop that moved).

    Idempotent. Returns {"added", "changed", "removed": [{"endpoint", "key"}], "errors"}; every
    row says whether it is applied, where, or why not (``apply_note``).
    """
    from network.models import ElasticIP

    eip = ElasticIP.objects.select_related("address__subnet__network").filter(pk=eip_id).first()
    wanted = _wanted([eip]) if eip is not None else []
    report = _new_report()
    _put(wanted, report)
    placed = {(w.endpoint.pk, w.key) for w in wanted if w.spec is not None}
    for endpoint in _forwarding_hosts():
        _take_off(endpoint, lambda key, pk=endpoint.pk: not _belongs_to(key, eip_id) or (pk, key) in placed, report)
    return report


def _eips_of_desktop(desktop_id: int) -> set[int]:
    """The elastic IPs bound to the desktop's NICs or forwarding a port to one of them."""
    from network.models import ElasticIP

    bound = ElasticIP.objects.filter(address__desktop_id=desktop_id).values_list("pk", flat=True)
    forwarding = ElasticIP.objects.filter(port_forwards__address__desktop_id=desktop_id).values_list("pk", flat=True)
    return set(bound) | set(forwarding)


def forwarding_of_desktop_apply(*, desktop_id: int) -> dict:
    """The desktop moved: every elastic IP bound or forwarding to its NICs follows it."""
    report = _new_report()
    for eip_id in sorted(_eips_of_desktop(desktop_id)):
        for key, value in forwarding_apply(eip_id=eip_id).items():
            report[key] += value
    return report


def forwarding_sync() -> dict:
    """The periodic repair of host firewalls: every forward the database wants is in place (missing
    or altered rules put back), and every campus rule it does not want is removed.

    Returns {"added", "changed", "removed": counts, "errors": [...]}; a change is audited.
    """
    from network.models import ElasticIP

    wanted = _wanted(ElasticIP.objects.select_related("address__subnet__network").order_by("pk"))
    report = _new_report()
    _put(wanted, report)
    placed = {(w.endpoint.pk, w.key) for w in wanted if w.spec is not None}
    for endpoint in _forwarding_hosts():
        _take_off(endpoint, lambda key, pk=endpoint.pk: (pk, key) in placed, report)
    counts = {k: len(report[k]) for k in ("added", "changed", "removed")}
    if any(counts.values()):
        with transaction.atomic():
            event_record(action=Action.PORT_FORWARD_CHANGED, detail={"op": "forwarding_synced", **report})
        log.info("forwarding sync: %s", counts)
    return {**counts, "errors": report["errors"]}


# --- hooks --------------------------------------------------------------------------------------


def _on_network_changed(*, network_id: int) -> None:
    # Another tenant's new subnet changes what default groups keep out.
    enqueue("compute.tasks.network.security_groups_sync")


def _on_network_deleted(*, network_id: int, endpoints: list[str]) -> None:
    enqueue("compute.tasks.network.network_remove", network_id, endpoints)


def _on_security_group_changed(*, group_id: int) -> None:
    enqueue("compute.tasks.network.security_group_apply", group_id)


def _on_nic_changed(*, desktop_id: int) -> None:
    enqueue("compute.tasks.network.desktop_filters_apply", desktop_id)


def _on_forwarding_changed(*, eip_id: int) -> None:
    enqueue("compute.tasks.network.forwarding_apply", eip_id)


def _on_elastic_ip_rebound(*, desktop_id: int, reason: str) -> None:
    """In the binding's transaction: the desktop (row-locked) is reported to compute's observers,
    so billing meters its IP addresses with the elastic IP from this moment on."""
    if not Desktop.objects.filter(pk=desktop_id).exists():
        return  # a NIC of a desktop that is gone: nothing to meter
    compute_hooks.desktop_changed(desktop=locks.desktop_lock(desktop_id), reason=reason)


def register_hooks() -> None:
    """Called once at start-up (``ComputeConfig.ready``), in web and worker alike."""
    hooks.register("network_changed", _on_network_changed)
    hooks.register("network_deleted", _on_network_deleted)
    hooks.register("security_group_changed", _on_security_group_changed)
    hooks.register("nic_changed", _on_nic_changed)
    hooks.register("forwarding_changed", _on_forwarding_changed)
    hooks.register("elastic_ip_rebound", _on_elastic_ip_rebound)


def with_nics(spec, nics: tuple[NicSpec, ...]):
    """The VMSpec with the desktop's NICs (unchanged when it has none allocated)."""
    return dataclasses.replace(spec, nics=nics) if nics else spec


# --- demo ---------------------------------------------------------------------------------------


def seed_bindings() -> dict:
    """seed_demo: every demo desktop without a NIC gets one on its tenant's network, then the DHCP
    sync makes every endpoint's DHCP hold exactly the database's bindings (idempotent, and it
    clears entries a previous demo database left on a real hypervisor)."""
    allocated, errors = 0, []
    desktops = Desktop.objects.exclude(state=Desktop.State.DELETED).select_related("endpoint", "tenant", "owner")
    for desktop in desktops:
        if desktop_addresses(desktop):
            continue
        try:
            with transaction.atomic():
                allocated += len(desktop_nics_allocate(desktop=desktop))
        except ServiceError as exc:
            errors.append(f"{desktop.vm_name}: {exc.message}")
    report = dhcp_sync()
    return {
        "allocated": allocated,
        "pushed": report["added"] + report["changed"],
        "removed": report["removed"],
        "errors": (errors + report["errors"])[:5],
    }

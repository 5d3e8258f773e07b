"""A desktop's NICs on its endpoint: addresses from network's IPAM, the networks, filters and DHCP
entries they need where the desktop runs, and what follows the desktop when it moves or goes."""

import logging

from django.db import transaction
from kombu.exceptions import KombuError

from audit.actions import Action
from audit.services import event_record
from compute import locks
from compute.drivers.base import (
    DriverError,
    ErrorCode,
    HypervisorDriver,
    NicSpec,
)
from compute.hypervisor import driver_error_note, driver_for, vm_spec
from compute.models import Desktop, Endpoint
from compute.networking.filters import define_filters, filters_remove
from compute.networking.forwarding import eips_of_desktop, forwarding_apply, forwarding_of_desktop_apply
from compute.networking.overlay import network_joined, network_left, span_spec
from compute.networking.specs import (
    dhcp_host,
    filter_name,
    filters_supported,
    has_dhcp,
    is_libvirt,
    libvirt_network_name,
    network_spec,
    nic_network_name,
    with_nics,
)
from network import selectors as network_selectors
from network import services as network_services
from network.models import Address, Network, SecurityGroup

log = logging.getLogger(__name__)


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
    dhcp = Address.Dhcp.PORTAL if is_libvirt(endpoint) else Address.Dhcp.VCENTER
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
            mac=a.mac if is_libvirt(endpoint) else "",
            # Every NIC has its filter (anti-spoofing: only its own MAC and this IP), group or not.
            nwfilter=filter_name(a, endpoint) if with_filters else "",
            filter_params={"IP": a.ip} if with_filters else {},
        )
        for a in addresses
    )


def desktop_nics_observed(*, desktop: Desktop, nics, requested: tuple[NicSpec, ...] | None = None) -> None:
    """The VM exists: NICs whose MAC the hypervisor chose (vCenter) take that MAC in the database.

    ``requested``: the NICs the VM was made with. When the hypervisor kept every MAC asked for (libvirt
    always does), there is nothing to record and the addresses are not read again."""
    if requested is not None and all(
        not nic.mac or nic.mac.lower() == asked.mac.lower() for nic, asked in zip(nics, requested, strict=False)
    ):
        return
    for address, nic in zip(desktop_addresses(desktop), nics, strict=False):
        if nic.mac and nic.mac.lower() != address.mac:
            Address.objects.filter(pk=address.pk).update(mac=nic.mac.lower())


def network_ensure_on(*, network: Network, endpoint: Endpoint, driver: HypervisorDriver | None = None) -> str:
    """Make the network exist (defined, started, autostarted) on a libvirt endpoint; returns its name there.

    On a host with a data address the network spans hosts (``overlay``): its bridge there joins the
    others through the host's agent, which is told to sync (every holder, when the host is new to it)."""
    name = libvirt_network_name(network, endpoint)
    if not is_libvirt(endpoint):
        return nic_network_name(network, endpoint)
    driver = driver or driver_for(endpoint)
    spanning = span_spec(network, endpoint)
    # Concurrent callers (threads, worker processes, hosts) need no lock of ours: the driver's
    # ensure takes a define or start that another caller won as done.
    driver.network_ensure(spanning or network_spec(network, endpoint))
    new = network_services.deployment_record(network_id=network.pk, endpoint=endpoint.name)
    if spanning is not None:
        network_joined(network=network, endpoint=endpoint, new=new)
    return name


def network_remove(*, network_id: int, endpoints: list[str]) -> None:
    """The network was deleted: take its libvirt network off the endpoints that had it."""
    stub = Network(pk=network_id)
    for endpoint in Endpoint.objects.filter(name__in=endpoints, kind=Endpoint.Kind.LIBVIRT):
        try:
            driver_for(endpoint).network_delete(libvirt_network_name(stub, endpoint))
        except DriverError as exc:
            driver_error_note(endpoint, exc)
            log.warning("libvirt network %s stays on %s: %s", network_id, endpoint.name, exc)
    network_left(network_id=network_id, endpoints=endpoints)


def desktop_network_prepare(*, desktop: Desktop, driver: HypervisorDriver) -> tuple[NicSpec, ...]:
    """Before the VM is created on ``desktop.endpoint``: its networks, filters and DHCP entries
    there; returns the NicSpecs for the VMSpec (empty: the desktop has no allocation)."""
    addresses = desktop_addresses(desktop)
    if not addresses:
        return ()
    endpoint = desktop.endpoint
    _dhcp_mark(addresses, endpoint)
    if is_libvirt(endpoint):
        networks = {a.subnet.network_id: a.subnet.network for a in addresses}
        for network in networks.values():
            network_ensure_on(network=network, endpoint=endpoint, driver=driver)
        define_filters(addresses, endpoint, driver)
        _push(addresses, endpoint, driver)
        _gateway_request(endpoint)
    return nic_specs(desktop, addresses)


def _gateway_request(endpoint: Endpoint) -> None:
    """A desktop on a registered host reaches the outside through its network node's gateway: ask
    that node's agent to converge now (after the commit), rather than at the next periodic sync."""
    from compute.networking.gateway import gateways_request_for

    def ask() -> None:
        # Best effort: the periodic sync asks every node again, so a request that cannot be sent
        # (broker away; a process that runs tasks in place, where edge_sync refuses to run outside
        # the node's agent) never fails the desktop it was for.
        try:
            gateways_request_for(endpoint)
        except (DriverError, OSError, KombuError) as exc:
            log.warning("network node not asked for the gateway of %s now: %s", endpoint.name, exc)

    transaction.on_commit(ask)


def _push(addresses: list[Address], endpoint: Endpoint, driver: HypervisorDriver) -> list[Address]:
    pushed = []
    for address in addresses:
        network = address.subnet.network
        if not has_dhcp(network):
            continue
        driver.dhcp_host_set(libvirt_network_name(network, endpoint), dhcp_host(address))
        pushed.append(address)
    network_services.address_pushed(address_ids=[a.pk for a in pushed], endpoint=endpoint.name)
    return pushed


def bindings_remove_from(endpoint_name: str, addresses: list[Address]) -> str:
    """Remove the bindings from an endpoint's DHCP; returns "" or why it could not (the sync retries)."""
    endpoint = Endpoint.objects.filter(name=endpoint_name).first()
    if endpoint is None or not is_libvirt(endpoint):
        return ""
    try:
        driver = driver_for(endpoint)
        for address in addresses:
            if has_dhcp(address.subnet.network):
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
    if is_libvirt(endpoint):
        driver = driver or driver_for(endpoint)
        for network in {a.subnet.network_id: a.subnet.network for a in addresses}.values():
            network_ensure_on(network=network, endpoint=endpoint, driver=driver)
        define_filters(addresses, endpoint, driver)
        report["pushed"] = [a.mac for a in _push(addresses, endpoint, driver)]
    for old, moved in previous.items():
        error = bindings_remove_from(old, moved)
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
        bindings_remove_from(endpoint_name, group)
        filters_remove(endpoint_name, group)
    eip_ids = eips_of_desktop(desktop.pk)
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

"""The periodic DHCP repair: each endpoint's DHCP hosts compared with what the database says should
be there, missing ones added, stale ones removed, all reported; and the demo's bindings."""

import logging

from django.db import transaction

from audit.actions import Action
from audit.services import event_record
from common.errors import ServiceError
from compute.drivers.base import (
    DhcpHost,
    DriverError,
    ErrorCode,
)
from compute.hypervisor import driver_error_note, driver_for
from compute.models import Desktop, Endpoint
from compute.networking.bindings import desktop_addresses, desktop_nics_allocate, network_ensure_on
from compute.networking.overlay import network_left
from compute.networking.specs import BOUND_STATES, dhcp_host, has_dhcp, is_libvirt, libvirt_network_name
from network import services as network_services
from network.models import Address, Network, NetworkDeployment

log = logging.getLogger(__name__)


def _desired(endpoint: Endpoint) -> dict[int, dict[str, DhcpHost]]:
    """{network id: {mac: host}} this endpoint's DHCP should hold, from the database alone."""
    desktop_ids = Desktop.objects.filter(endpoint=endpoint, state__in=BOUND_STATES).values_list("pk", flat=True)
    wanted: dict[int, dict[str, DhcpHost]] = {}
    nics = Address.objects.filter(
        desktop_id__in=list(desktop_ids), state=Address.State.ALLOCATED, kind=Address.Kind.NIC
    ).select_related("subnet__network")
    for address in nics:
        if has_dhcp(address.subnet.network):
            wanted.setdefault(address.subnet.network_id, {})[address.mac] = dhcp_host(address)
    deployed = NetworkDeployment.objects.filter(endpoint=endpoint.name).values_list("network_id", flat=True)
    reserved = Address.objects.filter(
        kind=Address.Kind.RESERVED, mac__isnull=False, subnet__network_id__in=list(deployed)
    ).select_related("subnet__network")
    for address in reserved:
        if has_dhcp(address.subnet.network):
            wanted.setdefault(address.subnet.network_id, {})[address.mac] = dhcp_host(address)
    return wanted


def _actual_hosts(driver, network: Network, endpoint: Endpoint, desired: dict) -> dict[str, DhcpHost] | None:
    """The DHCP hosts the endpoint's network holds now; a missing network is made again when
    bindings need it, else forgotten (None: nothing to do there)."""
    name = libvirt_network_name(network, endpoint)
    try:
        return {h.mac: h for h in driver.dhcp_hosts(name)}
    except DriverError as exc:
        if exc.code != ErrorCode.NOT_FOUND:
            raise
    if not desired:
        network_services.deployment_forget(network_id=network.pk, endpoint=endpoint.name)
        network_left(network_id=network.pk, endpoints=[endpoint.name])
        return None
    network_ensure_on(network=network, endpoint=endpoint, driver=driver)
    return {h.mac: h for h in driver.dhcp_hosts(name)}


def _repair_network(driver, name: str, desired: dict, actual: dict, result: dict) -> None:
    """Make one network's DHCP hosts what the database says, noting each change in ``result``."""
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


def _sync_endpoint(endpoint: Endpoint) -> dict:
    result = {"added": [], "changed": [], "removed": [], "errors": []}
    wanted = _desired(endpoint)
    deployed = set(NetworkDeployment.objects.filter(endpoint=endpoint.name).values_list("network_id", flat=True))
    networks = Network.objects.in_bulk(deployed | set(wanted))
    try:
        driver = driver_for(endpoint)
        for network_id, network in sorted(networks.items()):
            if not has_dhcp(network):
                continue
            desired = wanted.get(network_id, {})
            actual = _actual_hosts(driver, network, endpoint, desired)
            if actual is None:
                continue
            _repair_network(driver, libvirt_network_name(network, endpoint), desired, actual, result)
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
        if not is_libvirt(each):
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

"""Security groups on the hypervisors: each NIC's nwfilter, defined where its desktop runs and redefined
when its group's rules change (libvirt updates running VMs live)."""

import logging

from compute.drivers.base import (
    DriverError,
    FirewallRule,
    HypervisorDriver,
)
from compute.hypervisor import driver_error_note, driver_for
from compute.models import Desktop, Endpoint
from compute.networking.specs import BOUND_STATES, filter_name, filters_supported, group_rules, nwfilter_spec
from network.models import Address, SecurityGroup

log = logging.getLogger(__name__)


def define_filters(addresses: list[Address], endpoint: Endpoint, driver: HypervisorDriver) -> int:
    """Define the NICs' filters on the endpoint (each group's rules computed once); returns how many.

    Every NIC gets one, with or without a security group: the filter also carries the
    anti-spoofing reference (the NIC sends only from its own MAC and IP).
    """
    if not filters_supported(endpoint):
        return 0
    rules: dict[int, tuple[FirewallRule, ...]] = {}
    for address in addresses:
        group_id = address.security_group_id
        if group_id and group_id not in rules:
            rules[group_id] = group_rules(address.security_group)
        driver.nwfilter_define(nwfilter_spec(address, endpoint, rules.get(group_id, ())))
    return len(addresses)


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
            report["filters"] += define_filters(nics, endpoint, driver_for(endpoint))
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
    nics = Address.objects.filter(state=Address.State.ALLOCATED, kind=Address.Kind.NIC).select_related(
        "security_group__tenant"
    )
    result = _apply_filters(nics)
    return {"applied": result["filters"], "errors": result["errors"]}


def filters_remove(endpoint_name: str, addresses: list[Address]) -> None:
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

"""Celery tasks of the network orchestration (compute/networking.py): thin, idempotent, on the hypervisor queue.

Every task reads the database and converges the hypervisors towards it, so running one
twice does no harm. ``dhcp_sync_task`` (DHCP and host-firewall forwards) and ``addresses_purge_task`` are periodic
(portal/celery.py).
"""

import logging

from celery import shared_task

from compute import networking
from compute.models import Desktop
from network import services as network_services
from network.models import SecurityGroup

log = logging.getLogger(__name__)

# Named in the "network.tasks" namespace, which portal/celery.py routes to the hypervisor queue.
OPTIONS = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="network.tasks.dhcp_sync", **OPTIONS)
def dhcp_sync_task() -> dict:
    """The periodic repair: DHCP bindings, then the host firewalls' elastic IPs and port forwards."""
    report = networking.dhcp_sync()
    result = {k: report[k] for k in ("added", "changed", "removed", "released", "errors")}
    result["forwarding"] = networking.forwarding_sync()
    return result


@shared_task(name="network.tasks.addresses_purge", **OPTIONS)
def addresses_purge_task() -> int:
    return network_services.addresses_purge_expired()


@shared_task(name="network.tasks.desktop_bindings_push", **OPTIONS)
def desktop_bindings_push_task(desktop_id: int) -> dict:
    desktop = Desktop.objects.select_related("endpoint").filter(pk=desktop_id).first()
    if desktop is None or desktop.state == Desktop.State.DELETED:
        return {}
    return networking.desktop_bindings_push(desktop=desktop)


@shared_task(name="network.tasks.security_group_apply", **OPTIONS)
def security_group_apply_task(group_id: int) -> dict:
    group = SecurityGroup.objects.filter(pk=group_id).first()
    if group is None:
        return {}
    return networking.security_group_apply(group=group)


@shared_task(name="network.tasks.security_groups_sync", **OPTIONS)
def security_groups_sync_task() -> dict:
    return networking.security_groups_sync()


@shared_task(name="network.tasks.desktop_filters_apply", **OPTIONS)
def desktop_filters_apply_task(desktop_id: int) -> dict:
    return networking.desktop_filters_apply(desktop_id=desktop_id)


@shared_task(name="network.tasks.network_remove", **OPTIONS)
def network_remove_task(network_id: int, endpoints: list[str]) -> None:
    networking.network_remove(network_id=network_id, endpoints=endpoints)


@shared_task(name="network.tasks.forwarding_apply", **OPTIONS)
def forwarding_apply_task(eip_id: int) -> dict:
    return networking.forwarding_apply(eip_id=eip_id)

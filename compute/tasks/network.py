"""Celery tasks of the network orchestration (compute.networking): thin, idempotent, on the hypervisor queue.

Every task reads the database and converges the hypervisors towards it, so running one
twice does no harm. ``dhcp_sync`` (DHCP and host-firewall forwards) and ``addresses_purge``
are periodic (portal/celery.py); the others are started by network's hooks
(``compute.networking.hooks``).
"""

from celery import shared_task

from compute import networking
from compute.models import Desktop
from network import services as network_services
from network.models import SecurityGroup

OPTIONS = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(**OPTIONS)
def dhcp_sync() -> dict:
    """The periodic repair: DHCP bindings, then the host firewalls' elastic IPs and port forwards."""
    report = networking.dhcp_sync()
    result = {k: report[k] for k in ("added", "changed", "removed", "released", "errors")}
    result["forwarding"] = networking.forwarding_sync()
    return result


@shared_task(**OPTIONS)
def addresses_purge() -> int:
    return network_services.addresses_purge_expired()


@shared_task(**OPTIONS)
def desktop_bindings_push(desktop_id: int) -> dict:
    desktop = Desktop.objects.select_related("endpoint").filter(pk=desktop_id).first()
    if desktop is None or desktop.state == Desktop.State.DELETED:
        return {}
    return networking.desktop_bindings_push(desktop=desktop)


@shared_task(**OPTIONS)
def security_group_apply(group_id: int) -> dict:
    group = SecurityGroup.objects.filter(pk=group_id).first()
    if group is None:
        return {}
    return networking.security_group_apply(group=group)


@shared_task(**OPTIONS)
def security_groups_sync() -> dict:
    return networking.security_groups_sync()


@shared_task(**OPTIONS)
def desktop_filters_apply(desktop_id: int) -> dict:
    return networking.desktop_filters_apply(desktop_id=desktop_id)


@shared_task(**OPTIONS)
def network_remove(network_id: int, endpoints: list[str]) -> None:
    networking.network_remove(network_id=network_id, endpoints=endpoints)


@shared_task(**OPTIONS)
def forwarding_apply(eip_id: int) -> dict:
    return networking.forwarding_apply(eip_id=eip_id)

"""Celery tasks of networks that span hosts: the agent's sync of its host's VXLAN/VLAN devices, and the beat's
periodic send of it to every host (compute.networking.overlay says what and when)."""

from celery import shared_task

from compute.networking import overlay


@shared_task(acks_late=True, ignore_result=True)
def host_network_sync(name: str) -> dict:
    """On the host's agent (queue ``host.<name>``): its devices and forwarding entries from the database."""
    return overlay.host_network_sync(host_name=name)


@shared_task(ignore_result=True)
def hosts_network_sync_send() -> list[str]:
    """On the portal (beat): the periodic repair, one sync into every spanning host's queue."""
    return overlay.hosts_network_sync_send()

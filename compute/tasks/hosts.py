"""Celery tasks of the compute nodes' agents (``manage.py host_agent``): work that must run on the host itself.

Each host's agent consumes the queue ``host.<name>``. The portal's beat sends every host a heartbeat
task there (``hosts_heartbeat_send``); the agent runs it on the host, reads its capacity from its own
libvirtd (``HOST_AGENT_LIBVIRT_URI``, the local ``qemu:///system``) and records the heartbeat. A host
whose agent is not running keeps its messages queued (they expire unread), its heartbeat goes stale and
it shows "agent down": nothing meant for it runs anywhere else.
"""

import logging

from celery import shared_task
from django.conf import settings

from compute import services
from compute.drivers import open_driver
from compute.drivers.base import DriverError
from compute.models import Host

log = logging.getLogger(__name__)

# A heartbeat nobody consumed within this time is dropped: a dead agent's queue does not grow forever.
HEARTBEAT_EXPIRES = 60


@shared_task(acks_late=True, ignore_result=True)
def host_heartbeat(name: str) -> str:
    """On the host's agent: the agent is alive; the host's capacity as its own libvirtd reports it."""
    uri = getattr(settings, "HOST_AGENT_LIBVIRT_URI", "qemu:///system")
    info = None
    try:
        driver = open_driver("libvirt", uri, "", "")
        try:
            info = driver.host_info()
        finally:
            driver.close()
    except DriverError as exc:
        log.warning("host agent %s: cannot read the local libvirtd (%s): %s", name, uri, exc)
    services.host_heartbeat(name=name, info=info)
    return name


@shared_task(ignore_result=True)
def hosts_heartbeat_send() -> int:
    """On the portal (beat): one heartbeat task into every agent host's queue."""
    count = 0
    for host in Host.objects.filter(address__isnull=False).select_related("endpoint"):
        host_heartbeat.apply_async(args=[host.endpoint.name], queue=host.queue, expires=HEARTBEAT_EXPIRES)
        count += 1
    return count

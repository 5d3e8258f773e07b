"""HA detection: the portal probes each HA host's libvirtd; with the agent's heartbeat that says when it was last seen.

Probes run in threads with a time limit (``HA_PROBE_TIMEOUT``): a host that hangs costs a round that
long, not longer. A probe opens its own connection and closes it, so a cached driver of a dead host
never answers for it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from compute.drivers.base import DriverError
from compute.hypervisor import driver_open
from compute.models import ClusterHa, Host

log = logging.getLogger(__name__)


def ha_hosts():
    """The compute nodes HA watches: active, with a management address, in a cluster whose HA is on
    (a cluster without settings has HA on)."""
    off = ClusterHa.objects.filter(enabled=False).values("cluster_id")
    return (
        Host.objects.filter(is_active=True, address__isnull=False, endpoint__is_active=True)
        .exclude(Q(endpoint__cluster__in=off))
        .select_related("endpoint__cluster")
        .order_by("pk")
    )


def _probe(host: Host) -> bool:
    try:
        driver = driver_open(host.endpoint)
        try:
            driver.check()
        finally:
            driver.close()
    except DriverError as exc:
        log.info("HA probe of %s failed: %s", host.name, exc)
        return False
    return True


def hosts_probe(hosts: list[Host]) -> dict[int, bool]:
    """Probe the hosts' libvirtd at once; those that answered get ``probed_at`` = now. Returns {host pk: answered}."""
    if not hosts:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(16, len(hosts)), thread_name_prefix="ha-probe")
    futures = {pool.submit(_probe, host): host.pk for host in hosts}
    done, _pending = wait(futures, timeout=settings.HA_PROBE_TIMEOUT)
    pool.shutdown(wait=False, cancel_futures=True)
    answered = {pk: (future in done and future.result()) for future, pk in futures.items()}
    alive = [pk for pk, ok in answered.items() if ok]
    if alive:
        Host.objects.filter(pk__in=alive).update(probed_at=timezone.now())
    return answered

"""One HA round (the periodic task ``compute.tasks.ha.ha_tick``): detection → fencing → restart.

Safe with several workers running rounds at once: every transition is taken under the host's row lock
and re-checked there (only one round claims a host for fencing), and each desktop moves under its own
lock after checking that it is still on the fenced host.
"""

from __future__ import annotations

import time

from django.utils import timezone

from compute.ha import detection, fencing, restart, services, states
from compute.models import ClusterHa, HaIncident, HaState, Host


def _detection_by_cluster() -> dict[int, int]:
    return {ha.cluster_id: ha.detection for ha in ClusterHa.objects.all()}


def _detect(hosts: list[Host], answered: dict[int, bool]) -> None:
    custom = _detection_by_cluster()
    now = timezone.now()
    for host in hosts:
        host.refresh_from_db(fields=["heartbeat_at", "probed_at", "ha_state", "ha_since"])
        detection_seconds = custom.get(host.endpoint.cluster_id) or ClusterHa().detection
        seen = states.last_seen(host.heartbeat_at, host.probed_at)
        is_silent = not answered.get(host.pk) and states.silent(seen, now=now, detection=detection_seconds)
        wanted = states.step(host.ha_state, is_silent=is_silent, since=host.ha_since, now=now)
        if wanted == states.Step.SUSPECT:
            services.host_suspect(host_id=host.pk, seen=seen, now=now)
        elif wanted == states.Step.RECOVER:
            services.host_recover(host_id=host.pk, now=now)


def _fence_due(hosts: list[Host]) -> list[dict]:
    """Fence every host whose state calls for it (claimed under its lock first); returns what happened."""
    report = []
    for host in hosts:
        host.refresh_from_db(fields=["ha_state", "ha_since"])
        if host.ha_state not in (HaState.SUSPECT, HaState.FENCING, HaState.FENCE_FAILED):
            continue
        claimed = services.host_fence_claim(host_id=host.pk, now=timezone.now())
        if claimed is None:
            continue
        error = ""
        try:
            fencing.fence(claimed)
        except fencing.FenceFailed as exc:
            error = str(exc)
        services.host_fence_result(host_id=host.pk, error=error)
        report.append({"host": host.name, "fenced": not error, "error": error})
    return report


def _restart_fenced() -> list[dict]:
    report = []
    open_incidents = HaIncident.objects.filter(finished_at__isnull=True).values("host_id")
    for host in Host.objects.filter(ha_state=HaState.FENCED, pk__in=open_incidents).select_related("endpoint"):
        restarted, unplaced = restart.host_desktops_restart(host)
        services.incident_finish(host_id=host.pk, restarted=restarted, unplaced=unplaced)
        report.append({"host": host.name, "restarted": restarted, "unplaced": unplaced})
    return report


def ha_round() -> dict:
    """Probe, judge, fence and restart; returns what it did (for the task's log and the bench)."""
    started = time.monotonic()
    hosts = list(detection.ha_hosts())
    answered = detection.hosts_probe([h for h in hosts if h.ha_state == HaState.OK or h.ha_state == HaState.SUSPECT])
    _detect(hosts, answered)
    fenced = _fence_due(hosts)
    restarted = _restart_fenced()
    return {
        "hosts": len(hosts),
        "fenced": fenced,
        "restarted": restarted,
        "seconds": round(time.monotonic() - started, 2),
    }

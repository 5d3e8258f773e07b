"""Load balancing (DRS) of a cluster: which running desktops to move from hot hosts to cool ones.

A host's load is the memory of its running desktops over its memory capacity (after the cluster's
overcommit). Above the policy's threshold a host is hot: its running desktops, largest first, move to
the coolest enabled host of the cluster that stays below the threshold with it (and has its networks
and storage), until the hot host is below it, at most ``max_moves`` migrations of DRS at a time.
Nothing moves while a class of the cluster is in its first minutes (its desktops are all starting).
``recommend`` only shows the list; ``automatic`` (``drs_tick``, every minute) starts the migrations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import InvalidInput, ServiceError
from compute.errors import ComputeError
from compute.models import Cluster, Desktop, DesktopMigration, DrsPolicy, Host
from compute.services.migration import desktop_migrate, missing_on
from compute.services.rules import require_system_admin

if TYPE_CHECKING:
    from tenants.models import User

log = logging.getLogger(__name__)
_LOADED = Q(desktops__state__in=(Desktop.State.RUNNING, Desktop.State.MIGRATING))


@dataclass
class HostLoad:
    host: Host
    used_mib: float
    capacity_mib: float

    @property
    def percent(self) -> int:
        return round(100 * self.used_mib / self.capacity_mib) if self.capacity_mib else 0


@dataclass(frozen=True)
class Recommendation:
    desktop: Desktop
    source: Host
    target: Host
    source_percent: int  # the source's load before the move
    target_percent: int  # the target's load after it


def policy_of(cluster: Cluster) -> DrsPolicy:
    """The cluster's policy (off when never set)."""
    return DrsPolicy.objects.filter(cluster=cluster).first() or DrsPolicy(cluster=cluster)


def host_loads(cluster: Cluster) -> list[HostLoad]:
    hosts = (
        Host.objects.filter(endpoint__cluster=cluster, is_active=True, endpoint__is_active=True)
        .select_related("endpoint__cluster", "endpoint__site")
        .annotate(used=Sum("desktops__memory_mib", filter=_LOADED, default=0))
        .order_by("pk")
    )
    ratio = float(cluster.memory_overcommit)
    loads = {h.pk: HostLoad(host=h, used_mib=float(h.used), capacity_mib=float(h.memory_mib) * ratio) for h in hosts}
    # A desktop on its way counts on its target already, no longer on its source.
    moving = DesktopMigration.objects.filter(
        state__in=(DesktopMigration.State.QUEUED, DesktopMigration.State.RUNNING),
        kind=DesktopMigration.Kind.LIVE,
        source__in=list(loads),
    ).values_list("source_id", "target_id", "desktop__memory_mib")
    for source, target, mib in moving:
        loads[source].used_mib -= mib
        if target in loads:
            loads[target].used_mib += mib
    return list(loads.values())


def class_starting(cluster: Cluster, minutes: int) -> bool:
    """Whether a class whose desktops are on this cluster began within the last ``minutes``."""
    from compute.classroom.models import ClassSession

    now = timezone.now()
    return ClassSession.objects.filter(
        starts_at__gt=now - timedelta(minutes=minutes),
        starts_at__lte=now,
        pool__course__desktops__endpoint__cluster=cluster,
    ).exists()


def _in_flight(cluster: Cluster) -> int:
    return DesktopMigration.objects.filter(
        reason=DesktopMigration.Reason.DRS,
        state__in=(DesktopMigration.State.QUEUED, DesktopMigration.State.RUNNING),
        source__endpoint__cluster=cluster,
    ).count()


def _coolest(desktop: Desktop, hot: HostLoad, loads: list[HostLoad], threshold: int) -> HostLoad | None:
    fitting = [
        load
        for load in loads
        if load.host.pk != hot.host.pk
        and load.host.state == Host.State.ENABLED
        and load.capacity_mib
        and 100 * (load.used_mib + desktop.memory_mib) / load.capacity_mib < threshold
        and not missing_on(desktop, hot.host, load.host)
    ]
    return min(fitting, key=lambda load: (load.percent, load.host.pk), default=None)


def drs_recommendations(cluster: Cluster, policy: DrsPolicy | None = None) -> list[Recommendation]:
    """What DRS would move now (whatever its mode), within its budget of migrations at a time."""
    policy = policy or policy_of(cluster)
    if class_starting(cluster, policy.class_grace_minutes):
        return []
    budget = policy.max_moves - _in_flight(cluster)
    loads = host_loads(cluster)
    recommendations: list[Recommendation] = []
    for hot in sorted(loads, key=lambda load: -load.percent):
        if budget <= 0 or hot.percent <= policy.threshold_percent:
            break
        running = hot.host.desktops.filter(state=Desktop.State.RUNNING, gpus=0).select_related(
            "endpoint", "host__endpoint"
        )
        for desktop in running.order_by("-memory_mib", "pk"):
            if budget <= 0 or hot.percent <= policy.threshold_percent:
                break
            target = _coolest(desktop, hot, loads, policy.threshold_percent)
            if target is None:
                continue
            before = hot.percent
            hot.used_mib -= desktop.memory_mib
            target.used_mib += desktop.memory_mib
            recommendations.append(Recommendation(desktop, hot.host, target.host, before, target.percent))
            budget -= 1
    return recommendations


def drs_policy_set(
    *, actor: User, cluster: Cluster, mode: str, threshold_percent: int, max_moves: int, class_grace_minutes: int
) -> DrsPolicy:
    require_system_admin(actor)
    if mode not in DrsPolicy.Mode.values or not (1 <= threshold_percent <= 100) or not (1 <= max_moves <= 20):
        raise InvalidInput(
            _("负载均衡设置无效：阈值为 1-100，同时迁移数为 1-20。"), code=ComputeError.DRS_POLICY_INVALID
        )
    with transaction.atomic():
        policy, _created = DrsPolicy.objects.update_or_create(
            cluster=cluster,
            defaults={
                "mode": mode,
                "threshold_percent": threshold_percent,
                "max_moves": max_moves,
                "class_grace_minutes": max(0, class_grace_minutes),
            },
        )
        event_record(
            action=Action.INVENTORY_CHANGED,
            actor=actor,
            target=policy,
            detail={"kind": "drspolicy", "cluster": cluster.name, "mode": mode, "threshold": threshold_percent},
        )
    return policy


def drs_run(cluster: Cluster) -> list[DesktopMigration]:
    """Automatic DRS for one cluster: start the recommended migrations (a refused one is logged and skipped)."""
    policy = policy_of(cluster)
    if policy.mode != DrsPolicy.Mode.AUTOMATIC:
        return []
    started = []
    for rec in drs_recommendations(cluster, policy):
        try:
            started.append(
                desktop_migrate(actor=None, desktop=rec.desktop, host=rec.target, reason=DesktopMigration.Reason.DRS)
            )
        except ServiceError as exc:
            log.info("DRS leaves desktop %s on %s: %s", rec.desktop.pk, rec.source.name, exc.message)
    return started

"""HA's reads, for the system admin only (anyone else sees nothing): clusters with their HA settings and
state, a host's HA incidents."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from compute.models import Cluster, ClusterHa, HaIncident, HaState, Host, StoragePool
from compute.selectors import is_system_admin


def ha_clusters_for(user) -> QuerySet[Cluster]:
    """Clusters with their HA row (if any), how many hosts and how many of them HA holds."""
    clusters = Cluster.objects.select_related("site", "ha").annotate(
        host_count=Count("endpoints__hosts", distinct=True),
        held=Count("endpoints__hosts", filter=~Q(endpoints__hosts__ha_state=HaState.OK), distinct=True),
        unfenceable=Count("endpoints__hosts", filter=Q(endpoints__hosts__bmc_address=""), distinct=True),
    )
    if not is_system_admin(user):
        clusters = clusters.none()
    return clusters.order_by("site__slug", "name")


def ha_of(cluster: Cluster) -> ClusterHa:
    """The cluster's HA settings, or the defaults (unsaved) when it has none."""
    try:
        return cluster.ha
    except ClusterHa.DoesNotExist:
        return ClusterHa(cluster=cluster)


def shared_storage(cluster: Cluster) -> bool:
    return StoragePool.objects.filter(endpoint__cluster=cluster, kind=StoragePool.Kind.DISTRIBUTED).exists()


def ha_hosts_for(user) -> QuerySet[Host]:
    hosts = Host.objects.filter(address__isnull=False).select_related("endpoint__cluster__site")
    if not is_system_admin(user):
        hosts = hosts.none()
    return hosts.order_by("endpoint__name")


def host_incidents(host: Host, *, limit: int = 10) -> list[HaIncident]:
    return list(HaIncident.objects.filter(host=host).order_by("-suspect_at", "-pk")[:limit])


def ha_flag_settable_by(user, desktop) -> bool:
    """Who sees and sets a desktop's HA flag: its admins (system or tenant), not its owner or teacher."""
    from tenants import permissions as tenant_permissions

    return is_system_admin(user) or tenant_permissions.manages_tenant(user, desktop.tenant)

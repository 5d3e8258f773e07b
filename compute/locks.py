"""Row locks of the compute app: one named helper per kind of row, the only places compute locks rows.

Each returns its row locked FOR UPDATE until the transaction ends (built on
``common.db.LockingManager``). Several rows of one kind are locked in primary-key order, so
two transactions that lock overlapping sets queue behind each other instead of
deadlocking; a desktop is locked before its snapshots and volumes. ``image_version_share_lock``
is the one shared lock: many desktops may be created from a version at once, while its
retirement waits for them.
"""

from collections.abc import Iterable

from common.db import share_lock_status
from compute.models import (
    ClusterHa,
    Desktop,
    DesktopMigration,
    Endpoint,
    Flavor,
    HaIncident,
    Host,
    Image,
    ImageVersion,
    Snapshot,
    Volume,
)


def endpoint_lock(pk: int) -> Endpoint:
    return Endpoint.objects.locked(pk)


def flavor_lock(pk: int) -> Flavor:
    """The flavor being edited, so that two edits apply one after the other."""
    return Flavor.objects.select_for_update().get(pk=pk)


def host_lock(pk: int) -> Host:
    return Host.objects.locked(pk)


def host_lock_by_name(name: str) -> Host | None:
    """A compute node by its name (its endpoint's), locked; None when there is no such host."""
    return Host.objects.select_for_update().select_related("endpoint").filter(endpoint__name=name).first()


def cluster_ha_lock(cluster_id: int) -> ClusterHa:
    """A cluster's HA settings (made with the defaults when the cluster has none yet), locked."""
    ClusterHa.objects.get_or_create(cluster_id=cluster_id)
    return ClusterHa.objects.select_for_update().get(cluster_id=cluster_id)


def ha_incident_open_lock(host_id: int) -> HaIncident | None:
    """The host's HA incident still being handled, locked (None when there is none)."""
    return (
        HaIncident.objects.select_for_update().filter(host_id=host_id, finished_at__isnull=True).order_by("-pk").first()
    )


def ha_incident_lock(pk: int) -> HaIncident:
    return HaIncident.objects.select_for_update().get(pk=pk)


def image_lock(pk: int) -> Image:
    """The image, so that two new versions of it do not take the same number."""
    return Image.objects.locked(pk)


def image_version_lock(pk: int) -> ImageVersion:
    return ImageVersion.objects.locked(pk)


def image_version_share_lock(pk: int) -> str | None:
    """The version's status, read under a shared lock held until the transaction ends (None: no such version)."""
    return share_lock_status(ImageVersion, pk)


def desktop_lock(pk: int) -> Desktop:
    return Desktop.objects.locked(pk)


def desktops_lock(pks: Iterable[int]) -> list[Desktop]:
    """The desktops, locked in primary-key order, with the site whose queue their tasks go to."""
    return list(
        Desktop.objects.select_related("endpoint__site").select_for_update().filter(pk__in=list(pks)).order_by("pk")
    )


def endpoint_desktops_lock(endpoint: Endpoint, *, states: Iterable[str]) -> list[Desktop]:
    """The endpoint's desktops in these states (reconciliation compares them with the hypervisor)."""
    return list(Desktop.objects.select_for_update().filter(endpoint=endpoint, state__in=list(states)).order_by("pk"))


def migration_lock(pk: int) -> DesktopMigration:
    """A desktop's migration, with its desktop's tenant and hosts (finish, fail, cancel take it)."""
    return (
        DesktopMigration.objects.select_for_update()
        .select_related("desktop__tenant", "target__endpoint", "source__endpoint")
        .get(pk=pk)
    )


def snapshot_lock(pk: int) -> Snapshot:
    return Snapshot.objects.locked(pk)


def volume_lock(pk: int) -> Volume:
    """The volume with the endpoint (and site) it lives on."""
    return Volume.objects.select_related("endpoint__site").select_for_update().get(pk=pk)


def desktop_volumes_lock(desktop_id: int, *, exclude_state: str) -> list[Volume]:
    """The volumes on the desktop (but those in ``exclude_state``), in primary-key order."""
    return list(
        Volume.objects.select_for_update().filter(desktop_id=desktop_id).exclude(state=exclude_state).order_by("pk")
    )

"""REST API of compute: images, flavors, desktops (actions, snapshots, volumes), endpoints, sites.

Thin views: querysets come from compute.selectors (another tenant's object is a 404),
writes go through one service each, and services' refusals become {"code", "message", "detail"}.
Modules: catalog (images, flavors), desktops (desktops, their snapshots and data disks),
infrastructure (endpoints, sites); HA's collections are compute.ha.api's.
"""

from compute.api.catalog import FlavorViewSet, ImageViewSet
from compute.api.desktops import DataDiskViewSet, DesktopViewSet, SnapshotViewSet, VolumeViewSet
from compute.api.infrastructure import EndpointViewSet, SiteViewSet
from compute.ha import api as ha_api


def register(router) -> None:
    """Add this app's viewsets to the /api/v1/ router."""
    router.register("images", ImageViewSet, basename="image")
    router.register("flavors", FlavorViewSet, basename="flavor")
    router.register("desktops", DesktopViewSet, basename="desktop")
    router.register("volumes", DataDiskViewSet, basename="volume")
    router.register("endpoints", EndpointViewSet, basename="endpoint")
    router.register("sites", SiteViewSet, basename="site")
    ha_api.register(router)


def _urls():
    from django.urls import path

    snapshot_detail = SnapshotViewSet.as_view({"get": "retrieve", "delete": "destroy"})
    snapshot_revert = SnapshotViewSet.as_view({"post": "revert"})
    volume_detail = VolumeViewSet.as_view({"get": "retrieve", "delete": "destroy"})
    return [
        path("desktops/<int:desktop_pk>/snapshots/<int:pk>/", snapshot_detail, name="desktop-snapshot-detail"),
        path("desktops/<int:desktop_pk>/snapshots/<int:pk>/revert/", snapshot_revert, name="desktop-snapshot-revert"),
        path("desktops/<int:desktop_pk>/volumes/<int:pk>/", volume_detail, name="desktop-volume-detail"),
    ]


urlpatterns = _urls()

"""HTML pages of compute, under /compute/."""

from django.urls import path

from compute import hosts_views, migration_views, views
from compute.ha import views as ha_views

app_name = "compute"

urlpatterns = [
    path("", views.desktop_list, name="desktop-list"),
    path("desktops/new/", views.desktop_create, name="desktop-create"),
    path("desktops/<int:pk>/", views.desktop_detail, name="desktop-detail"),
    path("desktops/<int:pk>/row/", views.desktop_row, name="desktop-row"),
    path("desktops/<int:pk>/state/", views.desktop_state, name="desktop-state"),
    path("desktops/<int:pk>/resize/", views.desktop_resize, name="desktop-resize"),
    path("desktops/<int:pk>/snapshots/", views.snapshot_create, name="snapshot-create"),
    path("desktops/<int:pk>/snapshots/<int:snapshot_pk>/<str:op>/", views.snapshot_action, name="snapshot-action"),
    path("desktops/<int:pk>/volumes/", views.volume_attach, name="volume-attach"),
    path("desktops/<int:pk>/volumes/<int:volume_pk>/detach/", views.volume_detach, name="volume-detach"),
    path("desktops/<int:pk>/volumes/<int:volume_pk>/delete/", views.volume_delete, name="volume-delete"),
    path("desktops/<int:pk>/<str:verb>/", views.desktop_action, name="desktop-action"),
    path("admin/endpoints/", views.endpoint_list, name="endpoint-list"),
    path("admin/hosts/", hosts_views.host_list, name="host-list"),
    path("admin/hosts/<int:pk>/", hosts_views.host_detail, name="host-detail"),
    path("admin/hosts/<int:pk>/network-node/", hosts_views.host_network_node, name="host-network-node"),
    path("admin/hosts/<int:pk>/data-address/", hosts_views.host_data_address, name="host-data-address"),
    path("admin/hosts/<int:pk>/maintenance/", migration_views.host_maintenance, name="host-maintenance"),
    path("admin/desktops/<int:pk>/migrate/", migration_views.desktop_migrate, name="desktop-migrate"),
    path("admin/migrations/<int:pk>/cancel/", migration_views.migration_cancel, name="migration-cancel"),
    path("admin/drs/", migration_views.drs, name="drs"),
    path("admin/hosts/<int:pk>/bmc/", ha_views.host_bmc, name="host-bmc"),
    path("admin/hosts/<int:pk>/ha-clear/", ha_views.host_clear, name="host-ha-clear"),
    path("admin/ha/", ha_views.ha_clusters, name="ha-clusters"),
    path("admin/ha/<int:pk>/", ha_views.ha_clusters, name="ha-cluster-edit"),
    path("admin/endpoints/<int:pk>/import/", views.endpoint_import, name="endpoint-import"),
    path("admin/images/", views.image_list, name="image-list"),
    path("admin/images/<int:pk>/upload/", views.image_upload_chunk, name="image-upload"),
    path("admin/images/<int:pk>/template/", views.image_template_import, name="image-template"),
    path("admin/flavors/", views.flavor_list, name="flavor-list"),
    path("admin/flavors/<int:pk>/", views.flavor_list, name="flavor-edit"),
    path("admin/inventory/<slug:kind>/", views.inventory_list, name="inventory-list"),
    path("admin/inventory/<slug:kind>/<int:pk>/", views.inventory_list, name="inventory-edit"),
]

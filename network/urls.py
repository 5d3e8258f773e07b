"""HTML pages of this app."""

from django.urls import path

from network import views

app_name = "network"

urlpatterns = [
    path("", views.network_list, name="list"),
    path("<int:pk>/", views.network_detail, name="detail"),
    path("<int:pk>/delete/", views.network_delete, name="delete"),
    path("addresses/<int:pk>/unreserve/", views.address_unreserve, name="unreserve"),
    path("security-groups/", views.group_list, name="groups"),
    path("security-groups/<int:pk>/", views.group_detail, name="group"),
    path("security-groups/<int:pk>/delete/", views.group_delete, name="group_delete"),
    path("security-groups/<int:pk>/rules/<int:rule_id>/delete/", views.rule_delete, name="rule_delete"),
    path("elastic-ips/", views.elastic_ips, name="eips"),
    path("segments/", views.segments, name="segments"),
    path("segments/<int:pk>/assign/", views.segment_assign, name="segment_assign"),
    path("segments/<int:pk>/delete/", views.segment_delete, name="segment_delete"),
    path("address-pools/<int:pk>/assign/", views.pool_assign, name="pool_assign"),
    path("address-pools/<int:pk>/delete/", views.pool_delete, name="pool_delete"),
]

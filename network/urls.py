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
]

"""HTML pages of this app, under /tenants/."""

from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("tree/", views.tenant_tree, name="tree"),
    path("t/<slug:slug>/members/", views.members, name="members"),
    path("t/<slug:slug>/toggle/", views.tenant_toggle, name="toggle"),
    path("t/<slug:slug>/policy/", views.policy, name="policy"),
    path("members/<int:pk>/revoke/", views.member_revoke, name="member-revoke"),
    path("courses/", views.course_list, name="courses"),
    path("courses/<int:pk>/", views.course_detail, name="course"),
    path("courses/<int:pk>/reassign/", views.course_reassign, name="course-reassign"),
    path("quotas/", views.quota_list, name="quotas"),
    path("quotas/new/", views.quota_edit, name="quota-new"),
    path("quotas/<int:pk>/", views.quota_edit, name="quota-edit"),
    path("requests/", views.request_list, name="requests"),
    path("requests/new/", views.request_new, name="request-new"),
    path("requests/<int:pk>/", views.request_detail, name="request"),
    path("requests/<int:pk>/<str:verb>/", views.request_action, name="request-action"),
]

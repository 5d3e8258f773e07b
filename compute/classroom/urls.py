"""Pages of the classroom under /classroom/."""

from django.urls import path

from compute.classroom import views

app_name = "classroom"

urlpatterns = [
    path("", views.my_desktops, name="mine"),
    path("desktops/<int:pk>/action/", views.desktop_action, name="desktop-action"),
    path("desktops/<int:pk>/console/", views.console, name="console"),
    path("desktops/<int:pk>/shutdown-notice/", views.shutdown_notice, name="shutdown-notice"),
    path("pools/", views.pool_list, name="pools"),
    path("pools/new/", views.pool_new, name="pool-new"),
    path("pools/<int:pk>/", views.pool_detail, name="pool"),
    path("pools/<int:pk>/seats/", views.pool_seats, name="pool-seats"),
    path("pools/<int:pk>/action/", views.pool_action, name="pool-action"),
    path("pools/<int:pk>/skip/", views.pool_skip, name="pool-skip"),
    path("pools/<int:pk>/skip/<int:exception_pk>/remove/", views.pool_skip_remove, name="pool-skip-remove"),
    path("pools/<int:pk>/authoring/", views.authoring_start, name="authoring-start"),
    path("seats/<int:pk>/action/", views.seat_action, name="seat-action"),
    path("authoring/<int:pk>/publish/", views.authoring_publish, name="authoring-publish"),
]

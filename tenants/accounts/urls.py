"""Account management pages, under /accounts/manage/."""

from django.urls import path

from tenants.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.account_list, name="list"),
    path("<int:pk>/", views.account_detail, name="detail"),
    path("<int:pk>/<str:verb>/", views.account_action, name="action"),
    path("directory/<slug:slug>/", views.directory_edit, name="directory"),
]

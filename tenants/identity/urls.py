"""Campus sign-in pages, under /accounts/."""

from django.urls import path

from tenants.identity import views

app_name = "identity"

urlpatterns = [
    path("cas/login/", views.CASLoginView.as_view(), name="cas-login"),
    path("welcome/", views.welcome, name="welcome"),
    path("tokens/", views.tokens_page, name="tokens"),
]

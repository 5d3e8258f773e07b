"""Top-level URLs: the UI shell, each app's pages, the API and its schema."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from audit import views as audit_views
from portal import desktop_request, views, wizard
from portal.forms import LoginForm
from tenants.identity import views as identity_views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("request/new/", wizard.request_wizard, name="request-wizard"),
    path("request/desktop/", desktop_request.desktop_request, name="request-desktop"),
    path("healthz", views.healthz, name="healthz"),
    path(
        "accounts/login/",
        # Password, then the one-time code for accounts with a second factor (audit.views).
        audit_views.LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", identity_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("tenants.identity.urls")),
    path("accounts/manage/", include("tenants.accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("tenants/", include("tenants.urls")),
    path("compute/", include("compute.urls")),
    path("classroom/", include("compute.classroom.urls")),
    path("network/", include("network.urls")),
    path("billing/", include("billing.urls")),
    path("audit/", include("audit.urls")),
    path("api/v1/", include("portal.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

handler400 = "portal.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "portal.views.page_not_found"
handler500 = "portal.views.server_error"

"""/api/v1/: project endpoints plus every app's router registrations."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from audit import api as audit_api
from billing import api as billing_api
from compute import api as compute_api
from compute import migration_api
from compute.classroom import api as classroom_api
from network import api as network_api
from portal.api import views
from tenants import api as tenants_api
from tenants.accounts import api as accounts_api

APP_APIS = (tenants_api, accounts_api, compute_api, migration_api, classroom_api, network_api, billing_api, audit_api)


class Router(DefaultRouter):
    """A router whose numeric lookups only match digits: `/desktops/abc/` is a 404, not a 500."""

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        lookup_field = getattr(viewset, "lookup_field", "pk")
        if getattr(viewset, "lookup_value_regex", None) is None and lookup_field in ("pk", "id"):
            lookup_url_kwarg = getattr(viewset, "lookup_url_kwarg", None) or lookup_field
            return rf"(?P<{lookup_prefix}{lookup_url_kwarg}>[0-9]+)"
        return super().get_lookup_regex(viewset, lookup_prefix)


router = Router()
router.include_format_suffixes = False
for module in APP_APIS:
    module.register(router)

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("auth/tokens/", views.TokenListView.as_view(), name="api-tokens"),
    path("auth/tokens/<int:pk>/", views.TokenDetailView.as_view(), name="api-token-detail"),
    path("users/me/", views.MeView.as_view(), name="api-me"),
    *(pattern for module in APP_APIS for pattern in module.urlpatterns),
    path("", include(router.urls)),
]

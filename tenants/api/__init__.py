"""REST API of tenants: tenants, memberships, courses (roster, import, class times), quotas, requests.

Serializers in ``serializers``, viewsets in ``views``; ``register`` adds them to /api/v1/.
"""

from tenants.api.views import CourseViewSet, MembershipViewSet, QuotaViewSet, RequestViewSet, TenantViewSet

__all__ = ["CourseViewSet", "MembershipViewSet", "QuotaViewSet", "RequestViewSet", "TenantViewSet", "register"]


def register(router) -> None:
    """Add this app's viewsets to the /api/v1/ router."""
    router.register("tenants", TenantViewSet, basename="tenant")
    router.register("memberships", MembershipViewSet, basename="membership")
    router.register("courses", CourseViewSet, basename="course")
    router.register("quotas", QuotaViewSet, basename="quota")
    router.register("requests", RequestViewSet, basename="request")


urlpatterns: list = []

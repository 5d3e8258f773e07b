"""Template context every page needs: the navigation the user's roles allow."""

from django.conf import settings

from portal.navigation import items_for
from tenants.selectors import platform_role_of, roles_of


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "portal_name": settings.PORTAL_NAME}
    return {
        "nav_items": items_for(roles_of(user), request.path),
        "user_roles": sorted(roles_of(user)),
        "user_platform_role": platform_role_of(user),
        "portal_name": settings.PORTAL_NAME,
    }

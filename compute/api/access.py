"""Who may manage the platform-wide catalogue and infrastructure through the API."""

from django.utils.translation import gettext as _
from rest_framework.exceptions import PermissionDenied

from compute import selectors


def require_system_admin(user) -> None:
    if not selectors.is_system_admin(user):
        raise PermissionDenied(_("只有系统管理员可以管理该资源。"))

"""Who may manage networks: the tenant's admins (their subtree) and the system admin.

An actor of ``None`` is the platform itself (seed_demo, operator commands), never a request:
views and the API always pass the signed-in user.
"""

from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import platform_role_of, tenants_with_role


def is_system_admin(user) -> bool:
    """The system admin, or ``None``: the platform itself acting (seed_demo, operator commands)."""
    if user is None:
        return True
    return bool(getattr(user, "is_authenticated", False)) and platform_role_of(user) == PlatformRole.SYSTEM_ADMIN


def can_manage_networks(user, tenant) -> bool:
    """Shared networks (tenant None) are the system admin's; a tenant's also its tenant admins'."""
    if is_system_admin(user):
        return True
    if tenant is None or not getattr(user, "is_authenticated", False):
        return False
    return tenants_with_role(user, TenantRole.TENANT_ADMIN).filter(pk=tenant.pk).exists()

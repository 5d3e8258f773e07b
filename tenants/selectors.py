"""Reads scoped to the acting user. Every tenant-scoped queryset starts here, and fails closed."""

from django.db.models import Q, QuerySet

from tenants.models import Membership, Tenant, User
from tenants.roles import PlatformRole, TenantRole


def platform_role_of(user) -> str | None:
    """The user's platform role, or None. Cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_cc_platform_role"):
        assignment = getattr(user, "platform_role", None) if _has_platform_role(user) else None
        user._cc_platform_role = assignment.role if assignment else None
    return user._cc_platform_role


def _has_platform_role(user) -> bool:
    try:
        user.platform_role  # noqa: B018 - the reverse one-to-one raises when absent
    except User.platform_role.RelatedObjectDoesNotExist:
        return False
    return True


def memberships_of(user) -> list[Membership]:
    """The user's active memberships, tenants joined; cached on the user object."""
    if not getattr(user, "is_authenticated", False):
        return []
    if not hasattr(user, "_cc_memberships"):
        queryset = Membership.objects.filter(user=user, tenant__is_active=True).select_related("tenant")
        user._cc_memberships = list(queryset.order_by("tenant__path"))
    return user._cc_memberships


def roles_of(user) -> set[str]:
    """Every role the user holds anywhere: tenant roles and the platform role."""
    roles = {m.role for m in memberships_of(user)}
    platform = platform_role_of(user)
    if platform:
        roles.add(platform)
    return roles


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def tenants_with_role(user, *roles: str) -> QuerySet[Tenant]:
    """Tenants where the user holds one of `roles`, with their subtrees (a parent's admin manages children)."""
    paths = {m.tenant.path for m in memberships_of(user) if m.role in roles}
    if not paths:
        return Tenant.objects.none()
    condition = Q()
    for path in paths:
        condition |= Q(path__startswith=path)
    return Tenant.objects.filter(condition, is_active=True)


def tenant_list_for(user) -> QuerySet[Tenant]:
    """Tenants the user may see: the whole tree for platform admins, their subtrees otherwise."""
    if platform_role_of(user) in (PlatformRole.SYSTEM_ADMIN, PlatformRole.SECURITY_ADMIN, PlatformRole.AUDIT_ADMIN):
        return Tenant.objects.all()
    return tenants_with_role(user, *TenantRole.values)


def tenant_get_for(user, *, slug: str) -> Tenant:
    return tenant_list_for(user).get(slug=slug)


def describe_actor(user) -> tuple[str, str]:
    """(roles, tenant slug) of a user as the audit log records them."""
    platform = platform_role_of(user)
    if platform:
        return platform, ""
    memberships = memberships_of(user)
    roles = ",".join(sorted({m.role for m in memberships}))
    return roles, memberships[0].tenant.slug if memberships else ""

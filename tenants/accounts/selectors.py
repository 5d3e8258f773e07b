"""Reads of account management, scoped to the acting admin and failing closed."""

from django.db.models import Prefetch, QuerySet

from tenants import permissions
from tenants.identity.models import ExternalIdentity, IdentityConflict
from tenants.models import Membership, User
from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import tenants_with_role


def account_list_for(user) -> QuerySet[User]:
    """Every account for the security admin; for a tenant admin, the accounts holding a role in their
    tenants' subtrees (platform admins never); nothing for anyone else."""
    base = User.objects.select_related("account_state", "platform_role").prefetch_related(
        Prefetch("memberships", queryset=Membership.objects.select_related("tenant").order_by("tenant__path")),
        Prefetch("external_identities", queryset=ExternalIdentity.objects.order_by("source")),
    )
    if not getattr(user, "is_authenticated", False):
        return base.none()
    if permissions.is_platform(user, PlatformRole.SECURITY_ADMIN):
        return base.order_by("username")
    tenants = tenants_with_role(user, TenantRole.TENANT_ADMIN)
    if permissions.is_platform(user, PlatformRole.SYSTEM_ADMIN, PlatformRole.AUDIT_ADMIN) or not tenants.exists():
        return base.none()
    ids = Membership.objects.filter(tenant__in=tenants).values("user_id")
    return base.filter(pk__in=ids, platform_role__isnull=True).order_by("username")


def account_get_for(user, *, pk) -> User:
    return account_list_for(user).get(pk=pk)


def conflict_list_for(user) -> QuerySet[IdentityConflict]:
    """Unresolved identity conflicts: all for the security admin, their tenants' for a tenant admin."""
    base = IdentityConflict.objects.filter(resolved_at__isnull=True).select_related("tenant")
    if permissions.is_platform(user, PlatformRole.SECURITY_ADMIN):
        return base
    tenants = tenants_with_role(user, TenantRole.TENANT_ADMIN)
    return base.filter(tenant__in=tenants) if not permissions.is_platform(user, *PlatformRole.values) else base.none()


def managed_tenants_for(user):
    """Tenants in which the user may create accounts and import staff."""
    from tenants.models import Tenant

    if permissions.is_platform(user, PlatformRole.SECURITY_ADMIN):
        return Tenant.objects.filter(is_active=True).order_by("path")
    if permissions.is_platform(user, *PlatformRole.values):
        return Tenant.objects.none()
    return tenants_with_role(user, TenantRole.TENANT_ADMIN).order_by("path")

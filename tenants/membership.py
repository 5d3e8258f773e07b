"""Who may hold a tenant role, and whose account an import may touch: the rules every route that gives a
tenant role shares (a grant on the members page or the API, an account created or imported, a roster
import), so that they hold however the role arrives.

- 三员分立: a platform administrator holds no tenant role;
- nobody grants themselves a role that watches over others' work or money (auditor, finance): the
  security admin or an admin above the tenant does;
- nobody audits what they administer: an auditor role and a tenant admin role never meet on one line
  of the tenant tree (the same tenant, or one above the other);
- an import (roster, staff) claims only accounts of its own tenant, or accounts nobody holds yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from common.errors import Conflict, Forbidden
from tenants.errors import TenantsError
from tenants.models import Membership, PlatformAssignment
from tenants.roles import TenantRole

if TYPE_CHECKING:
    from tenants.models import Tenant, User

# Roles that watch over the others: nobody gives them to themselves.
NOT_SELF_GRANTED = (TenantRole.AUDITOR, TenantRole.FINANCE)
# Roles that never meet on one line of the tenant tree, in the same account.
SEPARATED = {TenantRole.AUDITOR: TenantRole.TENANT_ADMIN, TenantRole.TENANT_ADMIN: TenantRole.AUDITOR}


def role_conflict(user: User, tenant: Tenant, role: str) -> str:
    """Why ``user`` may not hold ``role`` in ``tenant`` beside what they hold already ("" when they may)."""
    if PlatformAssignment.objects.filter(user=user).exists():
        return _("三员分立：%(user)s 是平台管理员，不能再担任租户角色。") % {"user": user.username}
    other = SEPARATED.get(role)
    if other is None:
        return ""
    held = Membership.objects.filter(user=user, role=other).values_list("tenant__path", flat=True)
    if any(path.startswith(tenant.path) or tenant.path.startswith(path) for path in held):
        return _("%(user)s 已担任%(other)s，不能同时担任%(role)s：审计与管理须由不同的人承担。") % {
            "user": user.username,
            "other": TenantRole(other).label,
            "role": TenantRole(role).label,
        }
    return ""


def role_grant_check(*, actor: User | None, user: User, tenant: Tenant, role: str) -> None:
    """Refuse a grant of ``role`` in ``tenant`` to ``user`` that breaks a rule above (the caller has checked
    that ``actor`` may grant roles in the tenant at all). ``actor`` None is the platform itself."""
    if actor is not None and actor.pk == user.pk and role in NOT_SELF_GRANTED:
        raise Forbidden(
            _("不能给自己授予%(role)s角色，请由安全管理员或上级院系管理员授予。") % {"role": TenantRole(role).label},
            code=TenantsError.SELF_GRANT_FORBIDDEN,
        )
    conflict = role_conflict(user, tenant, role)
    if conflict:
        code = (
            TenantsError.PLATFORM_ROLES_SEPARATED
            if PlatformAssignment.objects.filter(user=user).exists()
            else TenantsError.AUDIT_AND_ADMIN_SEPARATED
        )
        raise Conflict(conflict, code=code)


def foreign_accounts(user_ids, tenant: Tenant) -> set[int]:
    """Of these accounts, those an import into ``tenant`` must not touch: a platform administrator's, or
    one that holds roles only in other tenants. An account with a role in this tenant, or with none
    anywhere (made by an earlier import or a campus sign-in, not placed yet), is this tenant's to use."""
    user_ids = set(user_ids)
    admins = set(PlatformAssignment.objects.filter(user_id__in=user_ids).values_list("user_id", flat=True))
    placed: dict[int, set[int]] = {}
    for user_id, tenant_id in Membership.objects.filter(user_id__in=user_ids).values_list("user_id", "tenant_id"):
        placed.setdefault(user_id, set()).add(tenant_id)
    elsewhere = {user_id for user_id, tenants in placed.items() if tenant.pk not in tenants}
    return admins | elsewhere


def import_refusals(*, actor: User | None, tenant: Tenant, role: str, user_ids) -> dict[int, str]:
    """Why an import by ``actor`` may not give ``role`` in ``tenant`` to each of these existing accounts
    (absent: it may): another tenant's or a platform admin's account, a self-grant, a separated role."""
    from tenants.models import User

    foreign = foreign_accounts(user_ids, tenant)
    refusals = {}
    for user in User.objects.filter(pk__in=set(user_ids)):
        if user.pk in foreign:
            refusals[user.pk] = _("该账号属于平台管理员或其他院系，不能导入本院系。")
        elif actor is not None and actor.pk == user.pk and role in NOT_SELF_GRANTED:
            refusals[user.pk] = _("不能给自己授予%(role)s角色。") % {"role": TenantRole(role).label}
        elif conflict := role_conflict(user, tenant, role):
            refusals[user.pk] = conflict
    return refusals

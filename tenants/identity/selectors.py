"""Reads of campus sign-in: whether an account may use its local password, and how it signs in."""

from tenants.identity.models import AccountState, ExternalIdentity


def account_state(user) -> AccountState | None:
    return AccountState.objects.filter(user_id=user.pk).first()


def is_linked(user) -> bool:
    return ExternalIdentity.objects.filter(user_id=user.pk).exists()


def local_password_refusal(user) -> str:
    """Why `user` may not sign in with a local password ("" when they may)."""
    state = account_state(user)
    if state is not None and state.kind == AccountState.Kind.SERVICE:
        return "service accounts sign in with API tokens only"
    if is_linked(user) and not (state is not None and state.local_password_allowed):
        return "local password disabled for an account linked to a campus identity"
    return ""


def must_change_password(user) -> bool:
    """An admin reset the password and the account still has the password the admin set."""
    state = account_state(user)
    return bool(state and state.reset_password_hash and state.reset_password_hash == user.password)


def whom_to_ask(user) -> dict:
    """The tenant admins of the person's directory department (by the tenants' placement rule), else the
    security admins, who assign roles platform-wide."""
    from tenants.identity.models import TenantDirectory
    from tenants.models import User
    from tenants.roles import PlatformRole, TenantRole

    state = account_state(user)
    department = state.department if state else ""
    tenants = [d.tenant for d in TenantDirectory.objects.select_related("tenant") if department in d.codes()]
    admins = list(
        User.objects.filter(
            is_active=True,
            memberships__role=TenantRole.TENANT_ADMIN,
            memberships__tenant__in=tenants,
        ).distinct()
    )
    if not admins:
        admins = list(User.objects.filter(is_active=True, platform_role__role=PlatformRole.SECURITY_ADMIN))
    return {"tenants": tenants, "admins": admins, "department": department, "by_tenant": bool(tenants)}

"""Accounts made the way campus sign-in makes them, for the role matrices and the isolation walk."""

from tenants import services
from tenants.identity.identity import CampusIdentity
from tenants.identity.models import TenantDirectory
from tenants.identity.provisioning import identity_sign_in
from tenants.models import User


def sso_account(*, tenant, role: str, number: str, subject: str, source: str = "cas") -> User:
    """An account created at a first campus sign-in (CAS by default), then given `role` in `tenant`: staff through
    the tenant's placement rule, a student through the roster import that matches them by number."""
    if role == "student":
        user = identity_sign_in(identity=CampusIdentity(source=source, subject=subject, number=number, name=subject))
        services.membership_grant(actor=None, user=user, tenant=tenant, role="student")
        return user
    TenantDirectory.objects.update_or_create(
        tenant=tenant, defaults={"departments": f"dept-{tenant.slug}", "place_new_staff": True, "staff_role": role}
    )
    identity = CampusIdentity(
        source=source, subject=subject, number=number, name=subject, department=f"dept-{tenant.slug}", staff=True
    )
    return identity_sign_in(identity=identity)

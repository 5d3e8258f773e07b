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


def taught_course_q(user, prefix: str = "") -> Q:
    """Courses whose teacher is `user` *and* who still holds the teacher role over the course's tenant:
    a revoked membership (or a disabled account) ends the authority the course gave (issue #14.5).
    `prefix` reaches the course through a relation, e.g. "course__" on desktops."""
    paths = (
        {m.tenant.path for m in memberships_of(user) if m.role == TenantRole.TEACHER}
        if getattr(user, "is_active", False)
        else set()
    )
    if not paths:
        return Q(pk__in=[]) if not prefix else Q(**{f"{prefix}pk__in": []})
    within = Q()
    for path in paths:
        within |= Q(**{f"{prefix}tenant__path__startswith": path})
    return Q(**{f"{prefix}teacher": user}) & within


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


# --- Courses, quotas, requests, memberships -------------------------------------------------

READER_ROLES = (TenantRole.TENANT_ADMIN, TenantRole.FINANCE, TenantRole.AUDITOR)


def _subtree_q(user, roles, field: str = "tenant__path") -> Q | None:
    """Q matching rows whose tenant lies under a tenant where the user holds one of `roles`; None if none."""
    paths = {m.tenant.path for m in memberships_of(user) if m.role in roles}
    if not paths:
        return None
    under = Q()
    for path in paths:
        under |= Q(path__startswith=path)
    # The subtree's ids in a subquery rather than a join on the tenant table: MariaDB then reads the
    # rows by their own tenant index and pages them by their own order (common/paging.py).
    relation = field.removesuffix("path").removesuffix("__") or "pk"
    return Q(**{f"{relation}__in": Tenant.objects.filter(under).values("pk")})


def _any(*conditions) -> Q | None:
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    result = Q()
    for c in present:
        result |= c
    return result


def _platform_answer(user, base: QuerySet) -> QuerySet | None:
    """What the anonymous (nothing), the system admin (everything) and the other platform admins (nothing:
    三员分立) see of ``base``; None for everyone else, whose tenant roles decide."""
    if not getattr(user, "is_authenticated", False):
        return base.none()
    if platform_role_of(user) == PlatformRole.SYSTEM_ADMIN:
        return base
    if platform_role_of(user):
        return base.none()
    return None


def course_list_for(user) -> QuerySet:
    """Courses a user may see: all for the system admin; a tenant's for its admins, finance and auditors;
    those taught or granted (guardian) for a teacher; those on whose roster a student is."""
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import UserObjectPermission

    from tenants.models import Course, RosterEntry

    base = Course.objects.filter(tenant__is_active=True).select_related("tenant", "teacher")
    if (decided := _platform_answer(user, base)) is not None:
        return decided
    # guardian keeps object ids as text; reading them out first avoids a text = integer join
    # (and MariaDB's collation clash between guardian's table and ours).
    granted = [
        int(pk)
        for pk in UserObjectPermission.objects.filter(
            user=user,
            permission__codename="manage_course",
            content_type=ContentType.objects.get_for_model(Course),
        ).values_list("object_pk", flat=True)
    ]
    condition = _any(
        _subtree_q(user, READER_ROLES),
        taught_course_q(user),
        Q(pk__in=granted),
        Q(pk__in=RosterEntry.objects.filter(user=user).values("course_id")),
    )
    return base.filter(condition)


def course_get_for(user, *, pk) -> object:
    return course_list_for(user).get(pk=pk)


def quota_list_for(user) -> QuerySet:
    """Quotas a user may see: their tenants' subtrees for admins, finance and auditors; for teachers their
    tenants', their courses' and their own; a person's own quota for everyone."""
    from tenants.models import Quota

    base = Quota.objects.filter(tenant__is_active=True).select_related("tenant", "course", "user")
    if (decided := _platform_answer(user, base)) is not None:
        return decided
    teacher_tenants = [m.tenant_id for m in memberships_of(user) if m.role == TenantRole.TEACHER]
    condition = _any(
        _subtree_q(user, READER_ROLES),
        Q(scope=Quota.Scope.TENANT, tenant_id__in=teacher_tenants) if teacher_tenants else None,
        Q(scope=Quota.Scope.COURSE, course__in=course_list_for(user).filter(teacher=user).values("pk"))
        if teacher_tenants
        else None,
        Q(user=user),
    )
    return base.filter(condition)


def request_list_for(user) -> QuerySet:
    """Requests a user may see: their own; their tenants' subtrees for admins, finance and auditors;
    every request for the system admin, who approves the steps above thresholds."""
    from tenants.models import ApprovalRequest

    base = ApprovalRequest.objects.select_related("tenant", "course", "requester").order_by("-created_at", "-id")
    if (decided := _platform_answer(user, base)) is not None:
        return decided
    return base.filter(_any(_subtree_q(user, READER_ROLES), Q(requester=user)))


def request_queue_for(user) -> QuerySet:
    """Pending requests whose current step this user decides (never their own)."""
    from django.db.models import OuterRef, Subquery

    from tenants.models import ApprovalRequest, ApprovalStep, ApproverRole

    current_role = Subquery(
        ApprovalStep.objects.filter(request=OuterRef("pk"), state=ApprovalStep.State.PENDING)
        .order_by("order")
        .values("approver_role")[:1]
    )
    pending = (
        ApprovalRequest.objects.filter(state=ApprovalRequest.State.PENDING)
        .annotate(current_role=current_role)
        .select_related("tenant", "course", "requester")
        .exclude(requester=user)
        .order_by("created_at", "id")
    )
    if not getattr(user, "is_authenticated", False):
        return pending.none()
    if platform_role_of(user) == PlatformRole.SYSTEM_ADMIN:
        return pending.filter(current_role=ApproverRole.SYSTEM_ADMIN)
    admin = _subtree_q(user, (TenantRole.TENANT_ADMIN,))
    if platform_role_of(user) or admin is None:
        return pending.none()
    return pending.filter(admin, current_role=ApproverRole.TENANT_ADMIN, tenant__is_active=True)


def membership_list_for(user) -> QuerySet:
    """Memberships a user may see: all for the security admin; a subtree's for its admins and auditors."""
    base = Membership.objects.select_related("user", "tenant").order_by("tenant__path", "user__username", "role")
    if platform_role_of(user) == PlatformRole.SECURITY_ADMIN:
        return base
    if platform_role_of(user):
        return base.none()
    condition = _subtree_q(user, (TenantRole.TENANT_ADMIN, TenantRole.AUDITOR))
    return base.filter(condition) if condition is not None else base.none()

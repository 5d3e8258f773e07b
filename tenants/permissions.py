"""Who may do what: role-derived rules, plus django-guardian grants on single objects.

Each predicate answers for one acting user and fails closed: an unknown user, an inactive
tenant or a missing role is a "no". Services call these before they write; selectors use
the same rules to scope what is read.
"""

from tenants.models import ApprovalRequest, ApprovalStep, ApproverRole, Course, Quota, Tenant
from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import memberships_of, platform_role_of

COURSE_PERMISSION = "tenants.manage_course"


def is_platform(user, *roles: str) -> bool:
    return platform_role_of(user) in roles


def role_paths(user, *roles: str) -> set[str]:
    """Paths of the tenants where the user holds one of `roles` (each covers its subtree)."""
    return {m.tenant.path for m in memberships_of(user) if m.role in roles}


def holds_role_over(user, tenant: Tenant, *roles: str) -> bool:
    """The user holds one of `roles` in `tenant` or in one of its ancestors."""
    if tenant is None or not tenant.is_active:
        return False
    return any(tenant.path.startswith(path) for path in role_paths(user, *roles))


def manages_tenant(user, tenant: Tenant) -> bool:
    """A tenant admin of the tenant or of an ancestor (a parent's admin manages its children)."""
    return holds_role_over(user, tenant, TenantRole.TENANT_ADMIN)


def can_create_child(user, parent: Tenant | None) -> bool:
    if is_platform(user, PlatformRole.SYSTEM_ADMIN):
        return True
    return parent is not None and manages_tenant(user, parent)


def can_edit_tenant(user, tenant: Tenant) -> bool:
    """The system admin, or an admin above it; a tenant's own admin edits its names but not its flag."""
    return is_platform(user, PlatformRole.SYSTEM_ADMIN) or manages_tenant(user, tenant)


def can_deactivate_tenant(user, tenant: Tenant) -> bool:
    if is_platform(user, PlatformRole.SYSTEM_ADMIN):
        return True
    return tenant.parent is not None and manages_tenant(user, tenant.parent)


def can_grant_roles(user, tenant: Tenant) -> bool:
    """The security admin anywhere, a tenant admin within the subtree. Never the system admin (三员分立)."""
    if is_platform(user, PlatformRole.SECURITY_ADMIN):
        return True
    if platform_role_of(user):
        return False
    return manages_tenant(user, tenant)


def can_set_quota(user, *, tenant: Tenant, scope: str) -> bool:
    """A tenant's own quota is set from above (its parent's admin or the system admin); a course's
    or a user's by the admin of their tenant."""
    if is_platform(user, PlatformRole.SYSTEM_ADMIN):
        return True
    if scope == Quota.Scope.TENANT:
        return tenant.parent is not None and manages_tenant(user, tenant.parent)
    return manages_tenant(user, tenant)


def teaches(user, course: Course) -> bool:
    """The course's teacher while they still hold the teacher role over its tenant (and the account is
    active): revoking the membership ends what the course gave them, on every route."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    return course.teacher_id == user.pk and holds_role_over(user, course.tenant, TenantRole.TEACHER)


def course_has_teacher(course: Course) -> bool:
    """Whether the course's teacher still teaches it (a tenant admin reassigns the course otherwise)."""
    teacher = course.teacher
    return teacher.is_active and holds_role_over(teacher, course.tenant, TenantRole.TEACHER)


def can_manage_course(user, course: Course) -> bool:
    """The course's teacher, a member of its tenant granted the course (guardian), or an admin of its tenant."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if not course.tenant.is_active:
        return False
    if teaches(user, course) or manages_tenant(user, course.tenant):
        return True
    # A grant of the course lasts as long as a role in its tenant: a revoked member keeps nothing.
    return holds_role_over(user, course.tenant, *TenantRole.values) and user.has_perm(COURSE_PERMISSION, course)


def can_create_course(user, tenant: Tenant) -> bool:
    return manages_tenant(user, tenant) or holds_role_over(user, tenant, TenantRole.TEACHER)


def can_request(user, tenant: Tenant, kind: str) -> bool:
    """Teachers and admins ask for anything in their tenant; students only for a personal desktop."""
    from tenants.models import RequestKind

    if holds_role_over(user, tenant, TenantRole.TEACHER, TenantRole.TENANT_ADMIN):
        return True
    return kind == RequestKind.PERSONAL_DESKTOP and holds_role_over(user, tenant, TenantRole.STUDENT)


def can_decide_step(user, request: ApprovalRequest, step: ApprovalStep | None) -> bool:
    """Approve or reject the pending step: its approver role over the request's tenant, never one's own."""
    if step is None or step.state != ApprovalStep.State.PENDING or request.requester_id == user.pk:
        return False
    if step.approver_role == ApproverRole.SYSTEM_ADMIN:
        return is_platform(user, PlatformRole.SYSTEM_ADMIN)
    if step.approver_role == ApproverRole.PARENT_ADMIN:
        return decides_above(user, request.tenant)
    return manages_tenant(user, request.tenant)


def decides_above(user, tenant: Tenant) -> bool:
    """Someone above the tenant: an admin of its parent (or higher), the system admin for a top-level one."""
    if tenant.parent_id is None:
        return is_platform(user, PlatformRole.SYSTEM_ADMIN)
    return manages_tenant(user, tenant.parent)

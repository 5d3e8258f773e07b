"""Writes of the tenants app. Each runs in one transaction and records its audit event.

`actor=None` means the platform itself (seed_demo, a Celery task acting on a decided
request): no permission check. Every call made for a person passes that person.

Quotas live in tenants.quotas and approvals in tenants.approvals; their public services
are re-exported here, so other apps import every write from `tenants.services`.
"""

import datetime
import re

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm

from audit.actions import Action
from audit.services import event_record
from common import limits
from common.errors import Conflict, Forbidden, InvalidInput
from tenants import locks, permissions
from tenants.errors import TenantsError
from tenants.membership import role_grant_check
from tenants.models import ClassTime, Course, Membership, PlatformAssignment, Tenant, User
from tenants.roles import PlatformRole, TenantRole

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


def _require(allowed: bool, actor: User | None, message: str, code: TenantsError) -> None:
    if actor is not None and not allowed:
        raise Forbidden(message, code=code)


# --- Tenant tree ----------------------------------------------------------------------------


def tenant_create(
    *, actor: User | None, slug: str, name_zh: str, name_en: str = "", kind: str, parent: Tenant | None
) -> Tenant:
    _require(
        permissions.can_create_child(actor, parent),
        actor,
        _("您不能在这里创建下级租户。"),
        TenantsError.TENANT_FORBIDDEN,
    )
    if not SLUG_RE.match(slug or ""):
        raise InvalidInput(_("标识只能包含小写字母、数字和连字符。"), code=TenantsError.INVALID_SLUG)
    if kind not in Tenant.Kind.values:
        raise InvalidInput(_("未知租户类型：%(kind)s") % {"kind": kind}, code=TenantsError.INVALID_KIND)
    if parent is not None and not parent.is_active:
        raise Conflict(_("上级租户已停用。"), code=TenantsError.PARENT_INACTIVE)
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(_("标识“%(slug)s”已被使用。") % {"slug": slug}, code=TenantsError.TENANT_SLUG_TAKEN)
    path = f"{parent.path if parent else '/'}{slug}/"
    if len(path) > Tenant._meta.get_field("path").max_length:
        raise InvalidInput(_("租户层级过深。"), code=TenantsError.TENANT_TOO_DEEP)
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(
                slug=slug, name_zh=name_zh, name_en=name_en, kind=kind, parent=parent, path=path
            )
            event_record(action=Action.TENANT_CREATED, actor=actor, target=tenant, tenant=tenant)
    except IntegrityError as exc:  # a concurrent create took the slug
        raise Conflict(_("标识“%(slug)s”已被使用。") % {"slug": slug}, code=TenantsError.TENANT_SLUG_TAKEN) from exc
    return tenant


def tenant_update(
    *,
    actor: User | None,
    tenant: Tenant,
    name_zh: str | None = None,
    name_en: str | None = None,
    is_active: bool | None = None,
) -> Tenant:
    """Rename a tenant, or switch it on or off (only from above: a tenant cannot switch itself off)."""
    _require(permissions.can_edit_tenant(actor, tenant), actor, _("您不能修改该租户。"), TenantsError.TENANT_FORBIDDEN)
    if is_active is not None and is_active != tenant.is_active:
        _require(
            permissions.can_deactivate_tenant(actor, tenant),
            actor,
            _("只有上级租户的管理员或系统管理员可以停用或启用租户。"),
            TenantsError.TENANT_FORBIDDEN,
        )
    changes = {}
    for field, value in (("name_zh", name_zh), ("name_en", name_en), ("is_active", is_active)):
        if value is not None and getattr(tenant, field) != value:
            changes[field] = [getattr(tenant, field), value]
            setattr(tenant, field, value)
    if not tenant.name_zh:
        raise InvalidInput(_("中文名称不能为空。"), code=TenantsError.INVALID_NAME)
    if changes:
        with transaction.atomic():
            tenant.save(update_fields=list(changes))
            event_record(action=Action.TENANT_CHANGED, actor=actor, target=tenant, tenant=tenant, detail=changes)
    return tenant


# --- Roles ----------------------------------------------------------------------------------


def membership_grant(*, actor: User | None, user: User, tenant: Tenant, role: str) -> Membership:
    """Give a tenant role. 三员分立 extends to tenants: a platform administrator holds no tenant role,
    so the system admin cannot, for instance, approve as a department admin as well; nobody grants
    themselves auditor or finance, and nobody is auditor where they are admin (tenants.membership)."""
    if role not in TenantRole.values:
        raise InvalidInput(_("未知角色：%(role)s") % {"role": role}, code=TenantsError.UNKNOWN_ROLE)
    _require(
        permissions.can_grant_roles(actor, tenant),
        actor,
        _("您不能在该租户中授予角色。"),
        TenantsError.ROLE_GRANT_FORBIDDEN,
    )
    with transaction.atomic():
        locks.user_lock(user.pk)
        role_grant_check(actor=actor, user=user, tenant=tenant, role=role)
        membership, created = Membership.objects.get_or_create(user=user, tenant=tenant, role=role)
        if created:
            event_record(action=Action.ROLE_GRANTED, actor=actor, target=user, tenant=tenant, detail={"role": role})
    return membership


def membership_revoke(*, actor: User | None, membership: Membership) -> None:
    tenant = membership.tenant
    _require(
        permissions.can_grant_roles(actor, tenant),
        actor,
        _("您不能在该租户中撤销角色。"),
        TenantsError.ROLE_REVOKE_FORBIDDEN,
    )
    if actor is not None and membership.user_id == actor.pk and membership.role == TenantRole.TENANT_ADMIN:
        # Locking oneself out is never what an admin means; another admin (or the security admin) does it.
        raise Conflict(_("不能撤销自己的管理员角色。"), code=TenantsError.CANNOT_REVOKE_OWN_ADMIN)
    with transaction.atomic():
        user, role = membership.user, membership.role
        membership.delete()
        event_record(action=Action.ROLE_REVOKED, actor=actor, target=user, tenant=tenant, detail={"role": role})
        _tokens_end_with_role(actor=actor, user=user, role=role)


def platform_role_grant(*, actor: User | None, user: User, role: str) -> PlatformAssignment:
    """Give one of the three platform roles. 三员分立: an account holds at most one, and no tenant role."""
    if role not in PlatformRole.values:
        raise InvalidInput(_("未知平台角色：%(role)s") % {"role": role}, code=TenantsError.UNKNOWN_ROLE)
    _require(
        permissions.is_platform(actor, PlatformRole.SECURITY_ADMIN),
        actor,
        _("只有安全管理员可以授予平台角色。"),
        TenantsError.ROLE_GRANT_FORBIDDEN,
    )
    existing = PlatformAssignment.objects.filter(user=user).first()
    if existing and existing.role == role:
        return existing
    if existing:
        raise Conflict(
            _("三员分立：%(user)s 已是%(role)s，不能再兼任其他平台角色。")
            % {"user": user.username, "role": PlatformRole(existing.role).label},
            code=TenantsError.PLATFORM_ROLES_SEPARATED,
        )
    if Membership.objects.filter(user=user).exists():
        raise Conflict(
            _("三员分立：%(user)s 担任着租户角色，不能再成为平台管理员。") % {"user": user.username},
            code=TenantsError.PLATFORM_ROLES_SEPARATED,
        )
    try:
        with transaction.atomic():
            assignment = PlatformAssignment.objects.create(user=user, role=role)
            event_record(action=Action.ROLE_GRANTED, actor=actor, target=user, detail={"platform_role": role})
    except IntegrityError as exc:  # a concurrent grant won the race; the unique key refused this one
        raise Conflict(_("三员分立：该账号已有平台角色。"), code=TenantsError.PLATFORM_ROLES_SEPARATED) from exc
    return assignment


def platform_role_revoke(*, actor: User | None, assignment: PlatformAssignment) -> None:
    _require(
        permissions.is_platform(actor, PlatformRole.SECURITY_ADMIN),
        actor,
        _("只有安全管理员可以撤销平台角色。"),
        TenantsError.ROLE_REVOKE_FORBIDDEN,
    )
    if actor is not None and assignment.user_id == actor.pk:
        raise Conflict(_("不能撤销自己的平台角色。"), code=TenantsError.CANNOT_REVOKE_OWN_ADMIN)
    with transaction.atomic():
        user, role = assignment.user, assignment.role
        assignment.delete()
        event_record(action=Action.ROLE_REVOKED, actor=actor, target=user, detail={"platform_role": role})
        _tokens_end_with_role(actor=actor, user=user, role=role)


def _tokens_end_with_role(*, actor: User | None, user: User, role: str) -> None:
    """A token issued for a role that needed a second factor does not outlive that role (issue #14.3)."""
    from audit.security import SECOND_FACTOR_ROLES
    from tenants.identity.tokens import tokens_revoke

    if role in SECOND_FACTOR_ROLES:
        tokens_revoke(user=user, actor=actor, reason=f"role {role} revoked")


# --- Courses --------------------------------------------------------------------------------


def _course_checks(*, tenant: Tenant, teacher: User, term_start, term_end) -> None:
    if term_end < term_start:
        message = _("学期结束日期不能早于开始日期。")
        raise InvalidInput(message, code=TenantsError.INVALID_TERM, detail={"term_end": [message]})
    limits.check_term(term_start, term_end, start_field="term_start", end_field="term_end")
    if not permissions.holds_role_over(teacher, tenant, TenantRole.TEACHER):
        raise InvalidInput(
            _("%(user)s 不是该租户的教师。") % {"user": teacher.get_full_name()},
            code=TenantsError.TEACHER_NOT_IN_TENANT,
        )


def course_create(
    *,
    actor: User | None,
    tenant: Tenant,
    code: str,
    name: str,
    teacher: User,
    term_start: datetime.date,
    term_end: datetime.date,
    class_times: list[tuple[int, datetime.time, datetime.time]] = (),
) -> Course:
    """Create a course. Its teacher is granted the course itself (guardian), whatever their roles later."""
    if actor is not None:
        _require(
            permissions.can_create_course(actor, tenant),
            actor,
            _("您不能在该租户中创建课程。"),
            TenantsError.COURSE_FORBIDDEN,
        )
        if teacher.pk != actor.pk and not permissions.manages_tenant(actor, tenant):
            raise Forbidden(_("教师只能为自己创建课程。"), code=TenantsError.COURSE_FORBIDDEN)
    code = (code or "").strip().upper()
    if not re.match(r"^[A-Z0-9][A-Z0-9_-]{0,31}$", code):
        raise InvalidInput(
            _("课程代码只能包含字母、数字、下划线和连字符，例如 CS101。"), code=TenantsError.INVALID_COURSE_CODE
        )
    _course_checks(tenant=tenant, teacher=teacher, term_start=term_start, term_end=term_end)
    if Course.objects.filter(tenant=tenant, code=code).exists():
        raise Conflict(_("课程代码 %(code)s 已存在。") % {"code": code}, code=TenantsError.COURSE_CODE_TAKEN)
    with transaction.atomic():
        course = Course.objects.create(
            tenant=tenant, code=code, name=name, teacher=teacher, term_start=term_start, term_end=term_end
        )
        assign_perm(permissions.COURSE_PERMISSION, teacher, course)
        _class_times_replace(course, class_times)
        event_record(
            action=Action.COURSE_CREATED,
            actor=actor,
            target=course,
            tenant=tenant,
            detail={"teacher": teacher.username},
        )
    return course


def course_update(
    *,
    actor: User | None,
    course: Course,
    name: str | None = None,
    teacher: User | None = None,
    term_start: datetime.date | None = None,
    term_end: datetime.date | None = None,
) -> Course:
    _require(
        permissions.can_manage_course(actor, course), actor, _("您不能修改该课程。"), TenantsError.COURSE_FORBIDDEN
    )
    if teacher is not None and teacher.pk != course.teacher_id and actor is not None:
        _require(
            permissions.manages_tenant(actor, course.tenant),
            actor,
            _("只有院系管理员可以更换教师。"),
            TenantsError.COURSE_FORBIDDEN,
        )
    changes = {}
    for field, value in (("name", name), ("term_start", term_start), ("term_end", term_end)):
        if value is not None and getattr(course, field) != value:
            changes[field] = [str(getattr(course, field)), str(value)]
            setattr(course, field, value)
    old_teacher = course.teacher
    if teacher is not None and teacher.pk != course.teacher_id:
        changes["teacher"] = [old_teacher.username, teacher.username]
        course.teacher = teacher
    _course_checks(tenant=course.tenant, teacher=course.teacher, term_start=course.term_start, term_end=course.term_end)
    if changes:
        with transaction.atomic():
            course.save()
            if "teacher" in changes:
                remove_perm(permissions.COURSE_PERMISSION, old_teacher, course)
                assign_perm(permissions.COURSE_PERMISSION, course.teacher, course)
            event_record(action=Action.COURSE_CHANGED, actor=actor, target=course, tenant=course.tenant, detail=changes)
    return course


def course_grant(*, actor: User | None, course: Course, user: User, revoke: bool = False) -> None:
    """Give (or take back) one more person the management of one course: a teaching assistant."""
    _require(
        permissions.manages_tenant(actor, course.tenant) or permissions.teaches(actor, course),
        actor,
        _("只有课程教师或院系管理员可以授权。"),
        TenantsError.COURSE_FORBIDDEN,
    )
    if not revoke and not permissions.holds_role_over(user, course.tenant, TenantRole.TEACHER):
        raise InvalidInput(_("只能授权给该租户的教师。"), code=TenantsError.TEACHER_NOT_IN_TENANT)
    with transaction.atomic():
        (remove_perm if revoke else assign_perm)(permissions.COURSE_PERMISSION, user, course)
        event_record(
            action=Action.ROLE_REVOKED if revoke else Action.ROLE_GRANTED,
            actor=actor,
            target=user,
            tenant=course.tenant,
            detail={"object_permission": permissions.COURSE_PERMISSION, "course": course.code},
        )


def course_delete(*, actor: User | None, course: Course) -> None:
    _require(
        permissions.manages_tenant(actor, course.tenant),
        actor,
        _("只有院系管理员可以删除课程。"),
        TenantsError.COURSE_FORBIDDEN,
    )
    if course.requests.exists():
        raise Conflict(_("该课程已有申请记录，不能删除。"), code=TenantsError.COURSE_IN_USE)
    try:
        with transaction.atomic():
            event_record(action=Action.COURSE_DELETED, actor=actor, target=course, tenant=course.tenant)
            course.delete()
    except ProtectedError as exc:  # desktops or usage still point at the course
        raise Conflict(_("该课程仍有云桌面或用量记录，不能删除。"), code=TenantsError.COURSE_IN_USE) from exc


def _class_times_replace(course: Course, slots) -> list[ClassTime]:
    parsed = []
    for weekday, start, end in slots:
        if weekday not in ClassTime.Weekday.values:
            raise InvalidInput(_("星期必须在 1（周一）到 7（周日）之间。"), code=TenantsError.INVALID_CLASS_TIME)
        if end <= start:
            message = _("下课时间必须晚于上课时间。")
            raise InvalidInput(message, code=TenantsError.INVALID_CLASS_TIME, detail={"end_time": [message]})
        slot = ClassTime(course=course, weekday=weekday, start_time=start, end_time=end)
        clash = next((other for other in parsed if other.overlaps(slot)), None)
        if clash:
            raise InvalidInput(
                _("上课时间重叠：%(a)s 与 %(b)s。") % {"a": clash, "b": slot}, code=TenantsError.CLASS_TIMES_OVERLAP
            )
        parsed.append(slot)
    course.class_times.all().delete()
    return ClassTime.objects.bulk_create(parsed)


def course_class_times_set(
    *, actor: User | None, course: Course, slots: list[tuple[int, datetime.time, datetime.time]]
) -> list:
    """Replace the weekly class times of a course; overlapping slots are refused."""
    _require(
        permissions.can_manage_course(actor, course), actor, _("您不能修改该课程。"), TenantsError.COURSE_FORBIDDEN
    )
    with transaction.atomic():
        created = _class_times_replace(course, slots)
        event_record(
            action=Action.COURSE_CHANGED,
            actor=actor,
            target=course,
            tenant=course.tenant,
            detail={"class_times": [str(s) for s in created]},
        )
    return created


from tenants.approvals import (  # noqa: E402 - re-exported: every write of this app is reachable here
    policy_set,
    request_approve,
    request_cancel,
    request_fail,
    request_fulfil,
    request_hand_over,
    request_reject,
    request_report,
    request_retry,
    request_submit,
)
from tenants.quotas import (  # noqa: E402
    QuotaExceeded,
    ResourceAmounts,
    Shortfall,
    quota_add,
    quota_charge_existing,
    quota_check,
    quota_commit,
    quota_commit_ids,
    quota_release,
    quota_reserve,
    quota_reserve_many,
    quota_set,
)
from tenants.roster import course_roster_import, course_roster_preview, course_roster_remove  # noqa: E402

__all__ = [
    "QuotaExceeded",
    "ResourceAmounts",
    "Shortfall",
    "course_class_times_set",
    "course_create",
    "course_delete",
    "course_grant",
    "course_roster_import",
    "course_roster_preview",
    "course_roster_remove",
    "course_update",
    "membership_grant",
    "membership_revoke",
    "platform_role_grant",
    "platform_role_revoke",
    "policy_set",
    "quota_add",
    "quota_charge_existing",
    "quota_check",
    "quota_commit",
    "quota_commit_ids",
    "quota_release",
    "quota_reserve",
    "quota_reserve_many",
    "quota_set",
    "request_approve",
    "request_cancel",
    "request_fail",
    "request_fulfil",
    "request_hand_over",
    "request_reject",
    "request_report",
    "request_retry",
    "request_submit",
    "tenant_create",
    "tenant_update",
]

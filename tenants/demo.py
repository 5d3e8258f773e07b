"""Demo tenants and accounts of CONTRACT.md. Idempotent: a second run changes nothing."""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction

from tenants.models import Membership, PlatformAssignment, Tenant, User
from tenants.roles import PlatformRole, TenantRole
from tenants.services import membership_grant, platform_role_grant, tenant_create

TENANTS = [
    # slug, Chinese name, English name, kind, parent slug
    ("university", "示范大学", "Demo University", Tenant.Kind.UNIVERSITY, None),
    ("cs", "计算机学院", "School of Computer Science", Tenant.Kind.COLLEGE, "university"),
    ("me", "机械学院", "School of Mechanical Engineering", Tenant.Kind.COLLEGE, "university"),
]

PLATFORM_ACCOUNTS = [
    ("sysadmin", "系统管理员", PlatformRole.SYSTEM_ADMIN),
    ("secadmin", "安全管理员", PlatformRole.SECURITY_ADMIN),
    ("auditadmin", "审计管理员", PlatformRole.AUDIT_ADMIN),
]

TENANT_ACCOUNTS = [
    # username, display name, tenant slug, role
    ("cs_admin", "计算机学院管理员", "cs", TenantRole.TENANT_ADMIN),
    ("teacher1", "张老师", "cs", TenantRole.TEACHER),
    ("finance1", "李会计", "cs", TenantRole.FINANCE),
    ("auditor1", "王审计", "cs", TenantRole.AUDITOR),
    ("me_admin", "机械学院管理员", "me", TenantRole.TENANT_ADMIN),
    ("teacher2", "赵老师", "me", TenantRole.TEACHER),
    ("student31", "学生31", "me", TenantRole.STUDENT),
    *[(f"student{n}", f"学生{n}", "cs", TenantRole.STUDENT) for n in range(1, 31)],
]


def _user(username: str, display_name: str, password_hash: str, student_number: str = "") -> User:
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"display_name": display_name, "password": password_hash, "student_number": student_number},
    )
    return user


def seed() -> dict:
    """Create what is missing; report what exists."""
    # One hash for every demo account: hashing 40 passwords one by one takes most of a minute.
    password_hash = make_password(settings.DEMO_PASSWORD)
    with transaction.atomic():
        tenants = {}
        for slug, name_zh, name_en, kind, parent in TENANTS:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                tenant = tenant_create(
                    actor=None, slug=slug, name_zh=name_zh, name_en=name_en, kind=kind, parent=tenants.get(parent)
                )
            tenants[slug] = tenant
        for username, display_name, role in PLATFORM_ACCOUNTS:
            user = _user(username, display_name, password_hash)
            platform_role_grant(actor=None, user=user, role=role)
        for username, display_name, slug, role in TENANT_ACCOUNTS:
            number = f"2026{int(username[7:]):04d}" if username.startswith("student") else ""
            user = _user(username, display_name, password_hash, number)
            membership_grant(actor=None, user=user, tenant=tenants[slug], role=role)
    return {
        "tenants": Tenant.objects.count(),
        "users": User.objects.count(),
        "memberships": Membership.objects.count(),
        "platform_roles": PlatformAssignment.objects.count(),
    }

"""Demo tenants, accounts, the CS101 course, quotas and approval policies of CONTRACT.md.

Idempotent: a second run changes nothing, and never undoes what someone changed since.
"""

import datetime

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from tenants.models import (
    ApprovalPolicy,
    ClassTime,
    Course,
    Membership,
    PlatformAssignment,
    Quota,
    RosterEntry,
    Tenant,
    User,
)
from tenants.roles import PlatformRole, TenantRole
from tenants.services import membership_grant, platform_role_grant, policy_set, quota_set, tenant_create

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
        defaults={
            "display_name": display_name,
            "password": password_hash,
            "student_number": student_number,
            "email": f"{username}@campus.example.edu",
        },
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
            # A grant locks the account; seeding again beside a live worker that is creating these
            # students' desktops takes no lock for the roles they already hold.
            if not Membership.objects.filter(user=user, tenant=tenants[slug], role=role).exists():
                membership_grant(actor=None, user=user, tenant=tenants[slug], role=role)
        course = _course_cs101(tenants["cs"])
        _quotas(tenants, course)
        _policies(tenants)
    return {
        "courses": Course.objects.count(),
        "cs101_roster": course.roster.count(),
        "quotas": Quota.objects.count(),
        "policies": ApprovalPolicy.objects.count(),
        "tenants": Tenant.objects.count(),
        "users": User.objects.count(),
        "memberships": Membership.objects.count(),
        "platform_roles": PlatformAssignment.objects.count(),
    }


# Limits per tenant: vCPU, RAM MiB, disk GiB, GPUs, desktops, IPs.
QUOTAS = {
    "university": {"vcpu": 2000, "ram_mib": 4096 * 1024, "disk_gib": 40000, "gpus": 16, "desktops": 1000, "ips": 1500},
    "cs": {"vcpu": 400, "ram_mib": 800 * 1024, "disk_gib": 8000, "gpus": 4, "desktops": 150, "ips": 200},
    "me": {"vcpu": 200, "ram_mib": 400 * 1024, "disk_gib": 4000, "gpus": 8, "desktops": 80, "ips": 100},
}
CS101_QUOTA = {"vcpu": 160, "ram_mib": 320 * 1024, "disk_gib": 3200, "gpus": 0, "desktops": 80, "ips": 80}


def _course_cs101(cs: Tenant) -> Course:
    """CS101 of teacher1: a term around today, Monday and Wednesday classes, student1..30."""
    teacher = User.objects.get(username="teacher1")
    today = timezone.localdate()
    course = Course.objects.filter(tenant=cs, code="CS101").first()
    if course is None:
        from tenants.services import course_create

        course = course_create(
            actor=None,
            tenant=cs,
            code="CS101",
            name="计算机导论",
            teacher=teacher,
            term_start=today - datetime.timedelta(days=30),
            term_end=today + datetime.timedelta(days=120),
            class_times=[
                (ClassTime.Weekday.MONDAY, datetime.time(8, 0), datetime.time(9, 40)),
                (ClassTime.Weekday.WEDNESDAY, datetime.time(14, 0), datetime.time(15, 40)),
            ],
        )
    students = User.objects.filter(username__in=[f"student{n}" for n in range(1, 31)])
    on_roster = set(course.roster.values_list("user_id", flat=True))
    RosterEntry.objects.bulk_create(
        RosterEntry(course=course, user=student, student_number=student.student_number)
        for student in students
        if student.pk not in on_roster
    )
    return course


def _quotas(tenants: dict, course: Course) -> None:
    for slug in ("university", "cs", "me"):  # parents first: a child is bounded by its parent
        if not Quota.objects.filter(key=f"tenant:{tenants[slug].pk}").exists():
            quota_set(actor=None, tenant=tenants[slug], limits=QUOTAS[slug])
    if not Quota.objects.filter(course=course).exists():
        quota_set(actor=None, tenant=course.tenant, course=course, limits=CS101_QUOTA)


def _policies(tenants: dict) -> None:
    for slug, name in (("cs", "计算机学院审批策略"), ("me", "机械学院审批策略")):
        if ApprovalPolicy.objects.filter(tenant=tenants[slug]).exists():
            continue
        policy_set(
            actor=None,
            tenant=tenants[slug],
            name=name,
            steps=[
                {"approver_role": "tenant_admin"},
                # Big requests also go to the platform: more than 100 desktops, 200 vCPUs or 4 GPUs.
                {"approver_role": "system_admin", "above_desktops": 100, "above_vcpu": 200, "above_gpus": 4},
            ],
            rules=[
                {
                    "name": "个人桌面自动审批",
                    "kind": "personal_desktop",
                    "max_desktops": 1,
                    "max_vcpu": 4,
                    "max_ram_mib": 8 * 1024,
                    "max_ips": 1,  # the desktop's own address
                    "max_disk_gib": 100,
                },
            ],
        )

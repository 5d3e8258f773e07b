"""The shared scenario (STYLE.md), built once per test session.

Tenant A (`cs`, under a university) with a tenant admin, a teacher, two students, finance and an
auditor; tenant B (`me`) with a stranger and its admin; the three platform admins. The rows are
committed when the test database is set up, so every test's database holds them, whether or not it
asks for the ``scenario`` fixture; the fixture gives a test fresh copies of them (`scenario_load`),
and the test's transaction rolls back whatever it changes. A transactional test empties the
database when it ends (Django flushes it), so the scenario is built again right after
(tests/conftest.py).
"""

from dataclasses import dataclass

from tests import factories


@dataclass
class Scenario:
    university: object
    tenant_a: object
    tenant_b: object
    tenant_admin: object
    teacher: object
    student: object
    student2: object
    finance: object
    auditor: object
    stranger: object
    stranger_admin: object
    sysadmin: object
    secadmin: object
    auditadmin: object


# Scenario field -> slug, names
TENANTS = {
    "university": ("uni", {"name_zh": "示范大学", "kind": "university"}),
    "tenant_a": ("cs", {"name_zh": "计算机学院", "name_en": "Computer Science"}),
    "tenant_b": ("me", {"name_zh": "机械学院", "name_en": "Mechanical Engineering"}),
}
# Scenario field -> username, tenant field, role
MEMBERS = {
    "tenant_admin": ("a_admin", "tenant_a", "tenant_admin"),
    "teacher": ("a_teacher", "tenant_a", "teacher"),
    "student": ("a_student", "tenant_a", "student"),
    "student2": ("a_student2", "tenant_a", "student"),
    "finance": ("a_finance", "tenant_a", "finance"),
    "auditor": ("a_auditor", "tenant_a", "auditor"),
    "stranger": ("b_teacher", "tenant_b", "teacher"),
    "stranger_admin": ("b_admin", "tenant_b", "tenant_admin"),
}
# Scenario field -> username, platform role
PLATFORM_ADMINS = {
    "sysadmin": ("p_sysadmin", "system_admin"),
    "secadmin": ("p_secadmin", "security_admin"),
    "auditadmin": ("p_auditadmin", "audit_admin"),
}


def scenario_build() -> None:
    """Make the scenario's rows (the caller decides whether they are committed)."""
    uni = factories.TenantFactory(slug=TENANTS["university"][0], **TENANTS["university"][1])
    tenants = {"university": uni}
    for field in ("tenant_a", "tenant_b"):
        slug, names = TENANTS[field]
        tenants[field] = factories.TenantFactory(slug=slug, parent=uni, **names)
    for username, tenant, role in MEMBERS.values():
        factories.member(username, tenants[tenant], role)
    for username, role in PLATFORM_ADMINS.values():
        factories.platform_admin(username, role)


def scenario_load() -> Scenario:
    """Fresh instances of the scenario's rows: what one test changes in memory, the next never sees."""
    from tenants.models import Tenant, User

    tenants = Tenant.objects.in_bulk([slug for slug, _ in TENANTS.values()], field_name="slug")
    usernames = {field: username for field, (username, *_) in {**MEMBERS, **PLATFORM_ADMINS}.items()}
    users = User.objects.in_bulk(list(usernames.values()), field_name="username")
    return Scenario(
        **{field: tenants[slug] for field, (slug, _) in TENANTS.items()},
        **{field: users[username] for field, username in usernames.items()},
    )

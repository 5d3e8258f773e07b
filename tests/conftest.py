"""Fixtures every test may use: the shared scenario and API clients.

The scenario (STYLE.md): tenant A (`cs`, under a university) with a tenant admin, a
teacher, two students, finance and an auditor; tenant B (`me`) with a stranger; and the
three platform admins.
"""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tests import factories

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Tests log in hundreds of times; PBKDF2 at production strength would dominate the run.
    settings.PASSWORD_HASHERS = FAST_HASHERS


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


@pytest.fixture
def scenario(db, settings) -> Scenario:
    settings.PASSWORD_HASHERS = FAST_HASHERS
    factories._PASSWORD_HASH = None
    uni = factories.TenantFactory(slug="uni", name_zh="示范大学", kind="university")
    a = factories.TenantFactory(slug="cs", name_zh="计算机学院", name_en="Computer Science", parent=uni)
    b = factories.TenantFactory(slug="me", name_zh="机械学院", name_en="Mechanical Engineering", parent=uni)
    return Scenario(
        university=uni,
        tenant_a=a,
        tenant_b=b,
        tenant_admin=factories.member("a_admin", a, "tenant_admin"),
        teacher=factories.member("a_teacher", a, "teacher"),
        student=factories.member("a_student", a, "student"),
        student2=factories.member("a_student2", a, "student"),
        finance=factories.member("a_finance", a, "finance"),
        auditor=factories.member("a_auditor", a, "auditor"),
        stranger=factories.member("b_teacher", b, "teacher"),
        stranger_admin=factories.member("b_admin", b, "tenant_admin"),
        sysadmin=factories.platform_admin("p_sysadmin", "system_admin"),
        secadmin=factories.platform_admin("p_secadmin", "security_admin"),
        auditadmin=factories.platform_admin("p_auditadmin", "audit_admin"),
    )


@pytest.fixture
def api():
    """An API client; `api.as_user(user)` authenticates it as that user."""

    class Client(APIClient):
        def as_user(self, user):
            self.force_authenticate(user=user)
            return self

    return Client()

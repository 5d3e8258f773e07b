"""Account management over the API: the role matrix (with an account made by a first CAS sign-in), then behaviours."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.test import Client
from openpyxl import Workbook

from audit.models import AuditEvent
from tenants.identity.errors import ErrorCode
from tenants.identity.models import AccountState, TenantDirectory
from tenants.models import Membership, PlatformAssignment, User
from tests import factories
from tests.sso.accounts import sso_account

pytestmark = pytest.mark.django_db

STRONG = "Kz9#long-enough-Pw"
ROLES = [
    "tenant_admin", "teacher", "student", "finance", "auditor", "stranger", "stranger_admin",
    "sysadmin", "secadmin", "auditadmin", "sso_student",
]  # fmt: skip


@pytest.fixture
def world(scenario):
    scenario.sso_student = sso_account(tenant=scenario.tenant_a, role="student", number="20260088", subject="s20260088")
    factories.UserFactory(username="newcomer")
    return scenario


def _csv(text="工号,姓名\nT8001,新老师\n"):
    return SimpleUploadedFile("staff.csv", text.encode(), content_type="text/csv")


OPERATIONS = {
    "accounts.list": ("get", lambda s: "/api/v1/accounts/", None),
    "accounts.retrieve": ("get", lambda s: f"/api/v1/accounts/{s.student.pk}/", None),
    "accounts.create": (
        "post",
        lambda s: "/api/v1/accounts/",
        lambda s: {"tenant": "cs", "username": "zhang3", "display_name": "张三", "role": "teacher", "password": STRONG},
    ),
    "accounts.disable": ("post", lambda s: f"/api/v1/accounts/{s.student2.pk}/disable/", lambda s: {}),
    "accounts.reset_password": (
        "post",
        lambda s: f"/api/v1/accounts/{s.student2.pk}/reset-password/",
        lambda s: {"password": STRONG},
    ),
    "accounts.local_password": (
        "post",
        lambda s: f"/api/v1/accounts/{s.sso_student.pk}/local-password/",
        lambda s: {"allowed": True},
    ),
    "accounts.service": (
        "post",
        lambda s: "/api/v1/accounts/service/",
        lambda s: {"tenant": "cs", "username": "etl-bot", "role": "finance", "purpose": "账单导出"},
    ),
    "accounts.staff_import": ("post", lambda s: "/api/v1/accounts/staff-import/", "upload"),
    "accounts.directory": (
        "post",
        lambda s: "/api/v1/accounts/directory/",
        lambda s: {"tenant": "cs", "departments": "cs", "place_new_staff": True},
    ),
    "platform_roles.list": ("get", lambda s: "/api/v1/platform-roles/", None),
    "platform_roles.retrieve": ("get", lambda s: f"/api/v1/platform-roles/{s.sysadmin.platform_role.pk}/", None),
    "platform_roles.create": (
        "post",
        lambda s: "/api/v1/platform-roles/",
        lambda s: {"user": "newcomer", "role": "audit_admin"},
    ),
    "platform_roles.destroy": ("delete", lambda s: f"/api/v1/platform-roles/{s.sysadmin.platform_role.pk}/", None),
}
OK, CREATED, GONE, DENIED, HIDDEN = 200, 201, 204, 403, 404
AUDITORS = {"auditor": DENIED, "auditadmin": DENIED}


def _row(default, **roles):
    return {role: roles.get(role, default) for role in ROLES}


MATRIX = {
    "accounts.list": _row(OK),
    "accounts.retrieve": _row(HIDDEN, tenant_admin=OK, secadmin=OK),
    "accounts.create": _row(HIDDEN, tenant_admin=CREATED, secadmin=CREATED, **AUDITORS),
    "accounts.disable": _row(HIDDEN, tenant_admin=OK, secadmin=OK, **AUDITORS),
    "accounts.reset_password": _row(HIDDEN, tenant_admin=OK, secadmin=OK, **AUDITORS),
    "accounts.local_password": _row(HIDDEN, tenant_admin=DENIED, secadmin=OK, **AUDITORS),
    "accounts.service": _row(DENIED, secadmin=CREATED),
    "accounts.staff_import": _row(HIDDEN, tenant_admin=OK, secadmin=OK, **AUDITORS),
    "accounts.directory": _row(HIDDEN, tenant_admin=OK, secadmin=OK, **AUDITORS),
    "platform_roles.list": _row(OK),
    "platform_roles.retrieve": _row(HIDDEN, secadmin=OK),
    "platform_roles.create": _row(DENIED, secadmin=CREATED),
    "platform_roles.destroy": _row(HIDDEN, secadmin=GONE, **AUDITORS),
}
CASES = [(op, role, MATRIX[op][role]) for op in OPERATIONS for role in ROLES]


def test_the_matrix_covers_every_operation_and_role():
    assert set(MATRIX) == set(OPERATIONS)


@pytest.mark.parametrize(("operation", "role", "expected"), CASES, ids=[f"{o}-{r}" for o, r, _ in CASES])
def test_role_matrix(world, api, operation, role, expected):
    method, url, body = OPERATIONS[operation]
    client = api.as_user(getattr(world, role))
    if body == "upload":
        response = client.post(url(world), {"tenant": "cs", "file": _csv()}, format="multipart")
    elif body is None:
        response = getattr(client, method)(url(world))
    else:
        response = getattr(client, method)(url(world), body(world), format="json")
    assert response.status_code == expected, f"{operation} as {role}: {response.status_code} {response.content[:300]!r}"
    if expected >= 400:
        assert set(response.json()) == {"code", "message", "detail"}


def _events(action):
    return AuditEvent.objects.filter(action=action)


def test_a_tenant_admins_new_account_must_change_its_password_at_first_sign_in(scenario, api):
    response = api.as_user(scenario.tenant_admin).post(
        "/api/v1/accounts/",
        {"tenant": "cs", "username": "li4", "display_name": "李四", "role": "teacher", "password": STRONG},
        format="json",
    )
    assert response.status_code == 201 and response.json()["must_change_password"] is True
    assert _events("account.created").get().actor_username == "a_admin"

    client = Client()
    login = client.post("/accounts/login/", {"username": "li4", "password": STRONG})
    assert login.status_code == 302
    assert client.get("/").url.startswith("/audit/account/password/")
    token = Client().post("/api/v1/auth/token/", {"username": "li4", "password": STRONG})
    assert token.json()["code"] == ErrorCode.PASSWORD_CHANGE_REQUIRED


def test_a_weak_password_is_refused_by_the_policy(scenario, api):
    response = api.as_user(scenario.tenant_admin).post(
        f"/api/v1/accounts/{scenario.student.pk}/reset-password/", {"password": "abc"}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == ErrorCode.WEAK_PASSWORD
    assert response.json()["detail"]["password"]


def test_a_disabled_account_cannot_sign_in_and_loses_its_token_until_re_enabled(scenario, api):
    token = Client().post("/api/v1/auth/token/", {"username": "a_student", "password": factories.PASSWORD}).json()
    admin = api.as_user(scenario.tenant_admin)

    assert admin.post(f"/api/v1/accounts/{scenario.student.pk}/disable/").json()["is_active"] is False
    assert (
        Client().post("/accounts/login/", {"username": "a_student", "password": factories.PASSWORD}).status_code == 200
    )
    assert Client().get("/api/v1/users/me/", HTTP_AUTHORIZATION=f"Token {token['token']}").status_code == 401

    assert admin.post(f"/api/v1/accounts/{scenario.student.pk}/enable/").json()["is_active"] is True
    assert (
        Client().post("/accounts/login/", {"username": "a_student", "password": factories.PASSWORD}).status_code == 302
    )
    assert {e.action for e in AuditEvent.objects.filter(object_id=str(scenario.student.pk))} >= {
        "account.disabled", "account.enabled"
    }  # fmt: skip


def test_an_admin_cannot_disable_themselves(scenario, api):
    response = api.as_user(scenario.tenant_admin).post(f"/api/v1/accounts/{scenario.tenant_admin.pk}/disable/")
    assert response.status_code == 409 and response.json()["code"] == ErrorCode.CANNOT_DISABLE_SELF


def test_a_tenant_admin_never_manages_a_platform_admin(scenario, api):
    factories.MembershipFactory(user=scenario.auditadmin, tenant=scenario.tenant_a, role="student")
    response = api.as_user(scenario.tenant_admin).post(f"/api/v1/accounts/{scenario.auditadmin.pk}/disable/")
    assert response.status_code == 404


def test_the_account_list_shows_last_sign_in_and_its_source(scenario, api):
    user = sso_account(tenant=scenario.tenant_a, role="student", number="20260099", subject="s20260099")
    AccountState.objects.filter(user=user).update(last_login_source="cas")
    body = api.as_user(scenario.tenant_admin).get(f"/api/v1/accounts/{user.pk}/").json()
    assert body["last_login_source"] == "cas" and body["sources"] == ["cas"]


def test_one_platform_role_per_person_is_a_database_rule(scenario):
    with pytest.raises(IntegrityError), transaction.atomic():
        PlatformAssignment.objects.create(user=scenario.sysadmin, role="audit_admin")


def test_the_security_admin_cannot_give_a_second_platform_role(scenario, api):
    response = api.as_user(scenario.secadmin).post(
        "/api/v1/platform-roles/", {"user": "p_sysadmin", "role": "audit_admin"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "platform_roles_separated"


def test_a_service_account_gets_a_token_that_works_for_the_api_and_does_not_expire(scenario, api):
    response = api.as_user(scenario.secadmin).post(
        "/api/v1/accounts/service/",
        {"tenant": "cs", "username": "etl-bot", "role": "finance", "purpose": "账单导出"},
        format="json",
    )
    token = response.json()["token"]
    me = Client().get("/api/v1/users/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200 and me.json()["tenants"] == [{"slug": "cs", "name": "计算机学院", "role": "finance"}]
    assert AccountState.objects.get(user__username="etl-bot").kind == "service"
    assert _events("account.service_created").exists()


def test_staff_import_creates_accounts_and_roles_from_csv_and_xlsx(scenario, api):
    admin = api.as_user(scenario.tenant_admin)
    first = admin.post("/api/v1/accounts/staff-import/", {"tenant": "cs", "file": _csv()}, format="multipart")
    assert first.json() == {"created_accounts": 1, "granted": 1, "unchanged": 0}
    book = Workbook()
    book.active.append(["工号", "姓名"])
    book.active.append(["T8001", "新老师"])
    book.active.append(["T8002", "又一位"])
    data = io.BytesIO()
    book.save(data)
    upload = SimpleUploadedFile("staff.xlsx", data.getvalue())
    counts = admin.post("/api/v1/accounts/staff-import/", {"tenant": "cs", "file": upload}, format="multipart").json()
    assert counts == {"created_accounts": 1, "granted": 1, "unchanged": 1}
    assert Membership.objects.filter(user__student_number__in=["T8001", "T8002"], role="teacher").count() == 2


def test_staff_import_with_a_bad_line_imports_nobody(scenario, api):
    response = api.as_user(scenario.tenant_admin).post(
        "/api/v1/accounts/staff-import/", {"tenant": "cs", "file": _csv("T8001,甲\n,乙\n")}, format="multipart"
    )
    assert response.status_code == 400 and [e["line"] for e in response.json()["detail"]["errors"]] == [2]
    assert not User.objects.filter(student_number="T8001").exists()


def test_the_directory_placement_rule_is_set_per_tenant_and_audited(scenario, api):
    response = api.as_user(scenario.tenant_admin).post(
        "/api/v1/accounts/directory/",
        {"tenant": "cs", "departments": "CS, cs-ai", "place_new_staff": True},
        format="json",
    )
    assert response.json()["departments"] == "cs,cs-ai"
    assert TenantDirectory.objects.get(tenant=scenario.tenant_a).codes() == {"cs", "cs-ai"}
    assert _events("tenant.directory_changed").get().tenant_slug == "cs"

"""The account pages: who sees them, and each form through the services."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from tenants.identity.models import AccountState
from tenants.models import PlatformAssignment, User
from tests import factories

pytestmark = pytest.mark.django_db
STRONG = "Kz9#long-enough-Pw"


def _as(user):
    from audit.testing import force_login_verified

    client = Client()
    force_login_verified(client, user)  # platform admins have passed their second factor
    return client


def test_only_tenant_admins_and_the_security_admin_reach_the_account_pages(scenario):
    assert _as(scenario.tenant_admin).get("/accounts/manage/").status_code == 200
    assert _as(scenario.secadmin).get("/accounts/manage/").status_code == 200
    for who in (scenario.student, scenario.teacher, scenario.sysadmin, scenario.auditadmin):
        assert _as(who).get("/accounts/manage/").status_code == 404


def test_a_tenant_admin_creates_an_account_from_the_page(scenario):
    response = _as(scenario.tenant_admin).post(
        "/accounts/manage/",
        {"form": "create", "create-tenant": "cs", "create-username": "wang5", "create-display_name": "王五",
         "create-role": "student", "create-password": STRONG},
    )  # fmt: skip
    assert response.status_code == 302
    assert User.objects.get(username="wang5").memberships.get().role == "student"


def test_another_tenants_account_page_is_a_404(scenario):
    assert _as(scenario.stranger_admin).get(f"/accounts/manage/{scenario.student.pk}/").status_code == 404
    page = _as(scenario.tenant_admin).get(f"/accounts/manage/{scenario.student.pk}/")
    assert page.status_code == 200 and "最近登录方式" in page.content.decode()


def test_the_security_admin_grants_and_revokes_a_platform_role_from_the_page(scenario):
    newcomer = factories.UserFactory(username="newcomer")
    client = _as(scenario.secadmin)
    client.post(f"/accounts/manage/{newcomer.pk}/grant-role/", {"role": "audit_admin"})
    assert PlatformAssignment.objects.get(user=newcomer).role == "audit_admin"
    client.post(f"/accounts/manage/{newcomer.pk}/revoke-role/")
    assert not PlatformAssignment.objects.filter(user=newcomer).exists()


def test_a_reset_from_the_page_forces_a_change_at_the_next_sign_in(scenario):
    _as(scenario.tenant_admin).post(f"/accounts/manage/{scenario.student.pk}/reset-password/", {"password": STRONG})
    client = Client()
    client.post("/accounts/login/", {"username": "a_student", "password": STRONG})
    assert client.get("/").url.startswith("/audit/account/password/")
    client.post(
        "/audit/account/password/",
        {"old_password": STRONG, "new_password": "Changed#2026-abc", "new_password2": "Changed#2026-abc"},
    )
    assert client.get("/").status_code == 200  # changed: no longer forced


def test_only_the_security_admin_allows_a_local_password(scenario):
    _as(scenario.tenant_admin).post(f"/accounts/manage/{scenario.student.pk}/local-password-on/")
    assert not AccountState.objects.filter(user=scenario.student, local_password_allowed=True).exists()
    _as(scenario.secadmin).post(f"/accounts/manage/{scenario.student.pk}/local-password-on/")
    assert AccountState.objects.get(user=scenario.student).local_password_allowed


def test_an_identity_conflict_is_shown_to_the_admins_of_its_tenant_only(scenario):
    from tenants.identity.models import IdentityConflict

    IdentityConflict.objects.create(
        source="cas", subject="s20260003", number="20260003", tenant=scenario.tenant_a, usernames=["a", "b"]
    )
    assert "s20260003" in _as(scenario.tenant_admin).get("/accounts/manage/").content.decode()
    assert "s20260003" not in _as(scenario.stranger_admin).get("/accounts/manage/").content.decode()


def test_a_refused_staff_import_stays_on_the_page_and_names_each_bad_line(scenario):
    from django.core.files.uploadedfile import SimpleUploadedFile

    factories.UserFactory(username="t9001")  # the account the import would create is somebody else's name
    upload = SimpleUploadedFile("staff.csv", "工号,姓名\nT9001,张三\n".encode())
    response = _as(scenario.tenant_admin).post(
        "/accounts/manage/",
        {"form": "import", "import-tenant": "cs", "import-role": "teacher", "import-file": upload},
    )
    assert response.status_code == 200  # the bound form again, with the refusal on it
    errors = response.context["forms"]["import"].non_field_errors()
    assert errors[0] == "有 1 行有误，未导入任何人。"
    assert errors[1] == "第 2 行：用户名已被其他账号使用"
    assert not User.objects.filter(student_number="T9001").exists()


def test_a_refused_password_reset_says_each_rule_the_password_broke(scenario):
    response = _as(scenario.tenant_admin).post(
        f"/accounts/manage/{scenario.student.pk}/reset-password/", {"password": "123"}
    )
    assert response.status_code == 302 and response.url == f"/accounts/manage/{scenario.student.pk}/"
    shown = [m.message for m in get_messages(response.wsgi_request)]
    assert shown[0] == "密码不符合安全策略。"
    assert len(shown) > 1  # one message per broken rule
    assert "已保存。" not in shown


def test_a_refused_account_action_is_a_message_on_the_account_page(scenario):
    response = _as(scenario.tenant_admin).post(f"/accounts/manage/{scenario.tenant_admin.pk}/disable/")
    assert response.url == f"/accounts/manage/{scenario.tenant_admin.pk}/"
    assert [m.message for m in get_messages(response.wsgi_request)] == ["不能停用自己的账号。"]
    assert User.objects.get(pk=scenario.tenant_admin.pk).is_active

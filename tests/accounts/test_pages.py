"""The account pages: who sees them, and each form through the services."""

import pytest
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

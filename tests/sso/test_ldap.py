"""LDAP sign-in through the login form and the token API, against the real slapd of the harness."""

import logging
import time

import pytest
from django.test import Client

from audit.models import AuditEvent
from tenants.identity.errors import ErrorCode
from tenants.identity.models import AccountState, ExternalIdentity, IdentityConflict, TenantDirectory
from tenants.models import Membership, User
from tests import factories
from tests.sso.slapd import PASSWORD

pytestmark = [pytest.mark.sso, pytest.mark.django_db]


def _login(username, password=PASSWORD, client=None):
    client = client or Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response


def _last(action):
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


def test_roster_student_signs_in_with_the_directory_password_and_activates_the_roster_account(ldap_on, roster):
    client, response = _login("s20260001")

    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(student_number="20260001")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert ExternalIdentity.objects.get(user=user).source == "ldap"
    assert _last("account.activated").object_id == str(user.pk)
    assert _last("auth.login").detail == {"source": "ldap"}
    assert AccountState.objects.get(user=user).last_login_source == "ldap"
    assert User.objects.filter(student_number="20260001").count() == 1  # linked, never a second account


def test_the_student_number_is_a_login_name_too(ldap_on, roster):
    _client, response = _login("20260002")

    assert response.status_code == 302
    assert ExternalIdentity.objects.get(subject="s20260002").user.username == "20260002"


def test_a_wrong_directory_password_is_refused_and_audited_with_its_source(ldap_on, roster):
    _client, response = _login("s20260001", "wrong-password")

    assert response.status_code == 200
    assert "用户名或密码错误" in response.content.decode()
    event = _last("auth.login_failed")
    assert event.detail == {"source": "ldap"} and event.reason == "invalid credentials"
    assert not ExternalIdentity.objects.exists()


def test_an_account_locked_in_the_directory_is_refused_even_with_its_password(ldap_on, roster):
    _client, response = _login("s20260009")

    assert "已被锁定" in response.content.decode()
    assert _last("auth.login_failed").reason == "account locked in the directory"
    assert not User.objects.filter(student_number="20260009").exists()


def test_a_person_on_no_roster_gets_an_account_with_no_role_and_a_page_saying_whom_to_ask(ldap_on, roster, scenario):
    TenantDirectory.objects.create(tenant=scenario.tenant_a, departments="cs")
    client, response = _login("s20269999")

    user = User.objects.get(student_number="20269999")
    assert not Membership.objects.filter(user=user).exists()
    page = client.get("/", follow=True)
    assert page.redirect_chain[-1][0] == "/accounts/welcome/"
    text = page.content.decode()
    assert "您的账号已开通" in text and scenario.tenant_admin.get_full_name() in text


def test_a_missing_number_attribute_creates_no_account_and_the_log_names_it(ldap_on, roster, caplog):
    with caplog.at_level(logging.WARNING, logger="tenants.identity"):
        _client, response = _login("s20260010")

    assert "employeeNumber" in response.content.decode()
    assert "attribute employeeNumber is missing" in caplog.text
    assert not User.objects.filter(username="s20260010").exists()
    assert _last("auth.login_failed").reason == ErrorCode.IDENTITY_ATTRIBUTE_MISSING


def test_a_number_in_unexpected_characters_creates_no_account(ldap_on, roster, caplog):
    with caplog.at_level(logging.WARNING, logger="tenants.identity"):
        _login("s20260011")

    assert "attribute employeeNumber has unexpected characters" in caplog.text
    assert not User.objects.filter(username="s20260011").exists()


def test_a_number_that_matches_two_accounts_is_refused_and_reported_to_the_tenant_admin(ldap_on, roster, scenario):
    twin = factories.member("twin", scenario.tenant_a, "student")
    User.objects.filter(pk=twin.pk).update(student_number="20260003")

    _client, response = _login("s20260003")

    assert "对应多个门户账号" in response.content.decode()
    conflict = IdentityConflict.objects.get(subject="s20260003")
    assert conflict.tenant == scenario.tenant_a and set(conflict.usernames) == {"20260003", "twin"}
    assert _last("identity.conflict").tenant_slug == "cs"
    assert not ExternalIdentity.objects.exists()


def test_a_directory_group_gives_its_mapped_role(ldap_on, scenario):
    _login("t1001")

    user = ExternalIdentity.objects.get(subject="t1001").user
    assert Membership.objects.filter(user=user, tenant=scenario.tenant_a, role="teacher").exists()


def test_new_staff_join_the_tenant_of_their_department_only_where_the_tenant_says_so(ldap_on, scenario):
    TenantDirectory.objects.create(tenant=scenario.tenant_b, departments="me", place_new_staff=True)
    TenantDirectory.objects.create(tenant=scenario.tenant_a, departments="physics", place_new_staff=False)

    _login("t2001")
    _login("t3001")

    assert Membership.objects.filter(user__username="t2001", tenant=scenario.tenant_b, role="teacher").exists()
    assert not Membership.objects.filter(user__username="t3001").exists()


def test_directory_failures_count_toward_the_lockout(ldap_on, roster):
    for _attempt in range(5):
        _login("s20260001", "wrong-password")

    _client, response = _login("s20260001")

    assert response.status_code == 403
    assert not ExternalIdentity.objects.exists()


def test_a_directory_that_is_down_fails_fast_with_a_clear_message_and_local_accounts_still_work(
    ldap_on, roster, scenario
):
    ldap_on.pause()
    try:
        started = time.monotonic()
        _client, response = _login("s20260001")
        elapsed = time.monotonic() - started
        _client, local = _login(scenario.student2.username, factories.PASSWORD)
    finally:
        ldap_on.resume()

    assert elapsed < 2 * 2.0 + 1  # LDAP_TIMEOUT is 2 s in the tests: connect/search, never a hang
    assert "统一身份认证服务暂时无法访问" in response.content.decode()
    assert _last("auth.login_failed").reason.startswith("directory unavailable")
    assert local.status_code == 302  # the break-glass (local) account is not held up


def test_the_token_api_accepts_directory_credentials_and_says_when_the_token_expires(ldap_on, roster, api):
    response = api.post("/api/v1/auth/token/", {"username": "s20260002", "password": PASSWORD}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"] and body["expires_at"]
    me = api.get("/api/v1/users/me/", HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert me.json()["username"] == "20260002"


def test_the_token_api_says_the_directory_is_down(ldap_on, roster, api):
    ldap_on.pause()
    try:
        response = api.post("/api/v1/auth/token/", {"username": "s20260002", "password": PASSWORD}, format="json")
    finally:
        ldap_on.resume()

    assert response.status_code == 503
    assert response.json()["code"] == ErrorCode.DIRECTORY_UNAVAILABLE

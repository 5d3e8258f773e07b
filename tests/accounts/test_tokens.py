"""Issue #14.3: API tokens follow the login rules, per device, on every request.

Each test is an attack today's tokens let through: a token that outlives the password, the role or
the second factor it was issued under, never idles out, ignores password expiry, or cannot be seen
and revoked by its owner.
"""

import json
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.errors import AuditError
from audit.security import password_change
from tenants.identity.models import ApiToken
from tenants.models import Membership, User
from tenants.services import membership_grant, membership_revoke
from tests import factories
from tests.audit.conftest import totp_now

pytestmark = pytest.mark.django_db


def _issue(username, name="laptop", otp=""):
    body = {"username": username, "password": factories.PASSWORD, "name": name}
    if otp:
        body["otp"] = otp
    response = Client().post("/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def _get(token, path="/api/v1/users/me/"):
    return Client().get(path, HTTP_AUTHORIZATION=f"Token {token}")


def test_tokens_are_per_device_named_listed_and_revocable_by_their_owner_only(scenario):
    laptop, script = _issue("a_student", "laptop"), _issue("a_student", "nightly script")
    other = _issue("a_student2", "phone")

    listed = _get(laptop["token"], "/api/v1/auth/tokens/").json()
    assert sorted(t["name"] for t in listed) == ["laptop", "nightly script"]
    assert [t["current"] for t in listed if t["name"] == "laptop"] == [True]
    assert not any("token" in t or "key_hash" in t for t in listed)

    revoke_other = Client().delete(f"/api/v1/auth/tokens/{other['id']}/", HTTP_AUTHORIZATION=f"Token {laptop['token']}")
    assert revoke_other.status_code == 404
    assert _get(other["token"]).status_code == 200

    revoked = Client().delete(f"/api/v1/auth/tokens/{script['id']}/", HTTP_AUTHORIZATION=f"Token {laptop['token']}")
    assert revoked.status_code == 204
    assert _get(script["token"]).status_code == 401
    assert _get(laptop["token"]).status_code == 200


def test_the_key_is_not_stored(scenario):
    issued = _issue("a_student")

    assert not ApiToken.objects.filter(key_hash=issued["token"]).exists()
    assert issued["token"] not in json.dumps(list(ApiToken.objects.values()), default=str)


def test_a_persons_token_expires_after_12_hours_even_when_in_use(scenario, settings):
    settings.API_TOKEN_HOURS = 12
    issued = _issue("a_student")
    start = timezone.now()

    for minutes in range(10, 12 * 60, 10):  # used every ten minutes: never idle
        with time_machine.travel(start + timedelta(minutes=minutes)):
            assert _get(issued["token"]).status_code == 200, minutes
    with time_machine.travel(start + timedelta(hours=12, minutes=1)):
        assert _get(issued["token"]).status_code == 401


def test_an_idle_token_ends_like_an_idle_session(scenario):
    from audit.policy import current_policy

    issued = _issue("a_student")
    idle = current_policy().idle_timeout_minutes

    with time_machine.travel(timezone.now() + timedelta(minutes=idle + 1)):
        response = _get(issued["token"])

    assert response.status_code == 401
    assert response.json()["code"] == AuditError.SESSION_EXPIRED
    assert not ApiToken.objects.filter(pk=issued["id"]).exists()


def test_an_expired_password_stops_its_tokens(scenario):
    issued = _issue("a_student")
    User.objects.filter(pk=scenario.student.pk).update(password_changed_at=timezone.now() - timedelta(days=3650))
    from audit.models import PasswordHistory

    PasswordHistory.objects.filter(user_id=scenario.student.pk).delete()

    response = _get(issued["token"])

    assert response.status_code == 403
    assert response.json()["code"] == AuditError.PASSWORD_EXPIRED


def test_a_password_change_deletes_every_token_of_the_person(scenario):
    first, second = _issue("a_student", "laptop"), _issue("a_student", "desktop")

    password_change(user=User.objects.get(pk=scenario.student.pk), new_password="Another#Pass-2027")

    assert _get(first["token"]).status_code == 401
    assert _get(second["token"]).status_code == 401
    assert not ApiToken.objects.filter(user=scenario.student).exists()


def test_a_token_issued_without_a_second_factor_never_acts_with_a_role_that_needs_one(scenario):
    issued = _issue("a_student")  # a student needs no second factor: none was asked
    membership_grant(actor=None, user=scenario.student, tenant=scenario.tenant_b, role="auditor")  # granted later

    response = _get(issued["token"])

    assert response.status_code == 403
    assert response.json()["code"] == AuditError.SECOND_FACTOR_REQUIRED


def test_losing_the_role_that_needed_a_second_factor_deletes_the_tokens(scenario):
    device = TOTPDevice.objects.create(user=scenario.finance, name="totp", confirmed=True)
    issued = _issue("a_finance", otp=totp_now(device))
    assert _get(issued["token"]).status_code == 200

    membership = Membership.objects.get(user=scenario.finance, tenant=scenario.tenant_a, role="finance")
    membership_revoke(actor=scenario.tenant_admin, membership=membership)

    assert _get(issued["token"]).status_code == 401
    assert not ApiToken.objects.filter(user=scenario.finance).exists()


def test_the_my_tokens_page_lists_issues_and_revokes(scenario):
    _issue("a_student", "laptop")
    client = Client()
    client.force_login(scenario.student)

    page = client.get("/accounts/tokens/")
    assert page.status_code == 200 and "laptop" in page.content.decode()

    client.post("/accounts/tokens/", {"name": "lab pc"})
    assert sorted(ApiToken.objects.filter(user=scenario.student).values_list("name", flat=True)) == [
        "lab pc",
        "laptop",
    ]
    laptop = ApiToken.objects.get(user=scenario.student, name="laptop")
    client.post("/accounts/tokens/", {"revoke": laptop.pk})
    assert not ApiToken.objects.filter(pk=laptop.pk).exists()

    foreign = ApiToken.objects.create(user=scenario.student2, name="x", key_hash="f" * 64, prefix="ffffffff")
    client.post("/accounts/tokens/", {"revoke": foreign.pk})
    assert ApiToken.objects.filter(pk=foreign.pk).exists()


def test_reauthentication_for_invoices_needs_the_second_factor_even_when_not_enrolled(scenario, rf):
    """The finance account signed in through a campus server that asserted MFA, so it has no TOTP here:
    a password alone must not re-authenticate it for an invoice."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.http import HttpResponse

    from audit.security import reauth_required

    @reauth_required
    def issue_invoice(request):
        return HttpResponse("issued")

    request = rf.post("/api/v1/invoices/1/issue/", HTTP_X_REAUTH_PASSWORD=factories.PASSWORD)
    request.user, request.session = scenario.finance, SessionStore()

    response = issue_invoice(request)

    assert response.status_code == 403
    assert json.loads(response.content)["code"] == AuditError.SECOND_FACTOR_NOT_ENROLLED


def test_the_upgrade_carries_drf_tokens_over_so_scripts_keep_working(scenario, api):
    import importlib

    from django.apps import apps
    from rest_framework.authtoken.models import Token

    service = api.as_user(scenario.secadmin).post(
        "/api/v1/accounts/service/",
        {"tenant": "cs", "username": "old-bot", "role": "teacher", "purpose": "脚本"},
        format="json",
    )
    bot = User.objects.get(username="old-bot")
    ApiToken.objects.filter(user=bot).delete()  # as before the upgrade: DRF's table held the keys
    old_service = Token.objects.create(user=bot)
    old_person = Token.objects.create(user=scenario.student)
    assert service.status_code == 201

    migration = importlib.import_module("tenants.identity.migrations.0003_migrate_drf_tokens")
    migration.carry_over(apps, None)

    assert _get(old_service.key).status_code == 200
    assert _get(old_person.key).status_code == 200
    assert ApiToken.objects.get(user=bot).expires_at is None
    assert ApiToken.objects.get(user=scenario.student).expires_at is not None
    assert not Token.objects.exists()

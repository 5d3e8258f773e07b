"""Login security: lockout, idle timeout, TOTP (with replay refused), password policy, history and expiry."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.actions import Action
from audit.errors import AuditError
from audit.models import AuditEvent
from audit.security import password_change
from audit.services import policy_update
from common.errors import Forbidden, InvalidInput
from tests.audit.conftest import totp_now
from tests.factories import PASSWORD


def _login(client, username, password=PASSWORD):
    return client.post("/accounts/login/", {"username": username, "password": password})


@pytest.mark.django_db
def test_five_failures_lock_the_account_for_thirty_minutes_and_the_lock_is_audited(scenario):
    client = Client()
    for _attempt in range(5):
        response = _login(client, "a_teacher", "wrong-password")
    assert AuditEvent.objects.filter(action=Action.LOGIN_FAILED, actor_username="a_teacher").count() >= 4
    assert AuditEvent.objects.filter(action=Action.LOCKOUT, actor_username="a_teacher").exists()

    response = _login(client, "a_teacher")  # the right password no longer helps
    assert response.status_code == 403
    assert "锁定" in response.content.decode()

    with time_machine.travel(timezone.now() + timedelta(minutes=31), tick=False):
        response = _login(Client(), "a_teacher")
    assert response.status_code == 302


@pytest.mark.django_db
def test_login_and_logout_are_audited_with_the_source_ip(scenario):
    client = Client(REMOTE_ADDR="10.1.2.3")
    assert _login(client, "a_teacher").status_code == 302
    client.post("/accounts/logout/")

    login = AuditEvent.objects.filter(action=Action.LOGIN_SUCCEEDED, actor_username="a_teacher").get()
    assert login.source_ip == "10.1.2.3"
    assert login.tenant_slug == "cs"
    assert AuditEvent.objects.filter(action=Action.LOGOUT, actor_username="a_teacher").exists()


@pytest.mark.django_db
def test_a_session_idle_for_fifteen_minutes_ends_on_the_server(scenario):
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _login(client, "a_teacher")
        assert client.get("/").status_code == 200
        key = client.session.session_key
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert client.get("/").status_code == 200  # activity within the limit keeps it alive
    with time_machine.travel(start + timedelta(minutes=30), tick=False):
        response = client.get("/")

    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")
    assert not Session.objects.filter(session_key=key).exists()
    assert AuditEvent.objects.filter(action=Action.SESSION_EXPIRED, actor_username="a_teacher").exists()


@pytest.mark.django_db
def test_logout_deletes_the_session_row(scenario):
    client = Client()
    _login(client, "a_teacher")
    key = client.session.session_key
    client.post("/accounts/logout/")
    assert not Session.objects.filter(session_key=key).exists()


@pytest.mark.django_db
def test_an_auditor_without_a_device_must_enrol_before_anything_else(scenario):
    client = Client()
    _login(client, "a_auditor")
    response = client.get("/audit/")
    assert response.status_code == 302
    assert response.url.startswith("/audit/account/otp/enrol/")

    page = client.get(response.url)
    assert page.status_code == 200
    assert "<svg" in page.content.decode()  # the QR code
    device = TOTPDevice.objects.get(user=scenario.auditor, confirmed=False)
    confirm = client.post("/audit/account/otp/enrol/", {"otp": totp_now(device)})
    assert confirm.status_code == 200
    assert 'data-testid="recovery-codes"' in confirm.content.decode()
    assert client.get("/audit/").status_code == 200
    assert AuditEvent.objects.filter(action=Action.SECOND_FACTOR_ENROLLED, actor_username="a_auditor").exists()


@pytest.fixture
def auditor_device(scenario):
    return TOTPDevice.objects.create(user=scenario.auditor, name="totp", confirmed=True)


@pytest.mark.django_db
def test_totp_is_required_after_the_password_and_a_code_cannot_be_replayed(scenario, auditor_device):
    client = Client()
    response = _login(client, "a_auditor")
    assert response.status_code == 302 and response.url == "/audit/account/otp/login/"
    assert "_auth_user_id" not in client.session  # not logged in yet

    wrong = "000000" if totp_now(auditor_device) != "000000" else "111111"
    assert client.post("/audit/account/otp/login/", {"otp": wrong}).status_code == 200
    # django-otp throttles a device for a second after a wrong code.
    with time_machine.travel(timezone.now() + timedelta(seconds=2), tick=False):
        code = totp_now(auditor_device)
        response = client.post("/audit/account/otp/login/", {"otp": code})
    assert response.status_code == 302
    assert client.get("/audit/").status_code == 200

    replay = Client()
    _login(replay, "a_auditor")
    response = replay.post("/audit/account/otp/login/", {"otp": code})
    assert response.status_code == 200
    assert "已使用过" in response.content.decode()
    assert "_auth_user_id" not in replay.session


@pytest.mark.django_db
def test_a_recovery_code_works_once(scenario, auditor_device):
    from audit.security import recovery_codes_generate

    codes = recovery_codes_generate(user=scenario.auditor)
    first = Client()
    _login(first, "a_auditor")
    assert first.post("/audit/account/otp/login/", {"otp": codes[0]}).status_code == 302
    second = Client()
    _login(second, "a_auditor")
    assert second.post("/audit/account/otp/login/", {"otp": codes[0]}).status_code == 200


@pytest.mark.django_db
def test_the_api_token_needs_the_one_time_code_for_an_auditor(scenario, auditor_device, api):
    url = "/api/v1/auth/token/"
    missing = api.post(url, {"username": "a_auditor", "password": PASSWORD}, format="json")
    assert missing.status_code == 400 and missing.json()["code"] == AuditError.OTP_REQUIRED
    ok = api.post(url, {"username": "a_auditor", "password": PASSWORD, "otp": totp_now(auditor_device)}, format="json")
    assert ok.status_code == 200 and ok.json()["token"]
    teacher = api.post(url, {"username": "a_teacher", "password": PASSWORD}, format="json")
    assert teacher.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Sh0rt!", AuditError.PASSWORD_TOO_SHORT),
        ("alllowercase1", AuditError.PASSWORD_TOO_SIMPLE),
        ("A_teacher#2026", AuditError.PASSWORD_CONTAINS_USERNAME),
    ],
)
def test_weak_passwords_are_refused(scenario, password, code):
    with pytest.raises(ValidationError) as info:
        password_change(user=scenario.teacher, new_password=password)
    assert code in {error.code for error in info.value.error_list}


@pytest.mark.django_db
def test_none_of_the_last_five_passwords_may_be_reused(scenario):
    user = scenario.teacher
    passwords = [f"Campus#{n}Cloud" for n in range(6)]
    for password in passwords[:5]:
        password_change(user=user, new_password=password)

    for recent in passwords[1:5]:
        with pytest.raises(ValidationError):
            password_change(user=user, new_password=recent)
    password_change(user=user, new_password=passwords[5])
    password_change(user=user, new_password=passwords[0])  # six changes ago: allowed again
    assert AuditEvent.objects.filter(action=Action.PASSWORD_CHANGED, actor_username=user.username).count() == 7


@pytest.mark.django_db
def test_an_expired_password_must_be_changed_at_login(scenario):
    user = scenario.teacher
    user.password_changed_at = timezone.now() - timedelta(days=91)
    user.save(update_fields=["password_changed_at"])
    client = Client()
    _login(client, "a_teacher")

    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/audit/account/password/")
    changed = client.post(
        "/audit/account/password/",
        {"old_password": PASSWORD, "new_password": "Fresh#Pass2026", "new_password2": "Fresh#Pass2026"},
    )
    assert changed.status_code == 302
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_the_security_admin_edits_the_policy_within_the_floor_and_each_change_is_audited(scenario):
    policy = policy_update(actor=scenario.secadmin, lockout_failures=3, idle_timeout_minutes=10)
    assert (policy.lockout_failures, policy.idle_timeout_minutes) == (3, 10)
    event = AuditEvent.objects.get(action=Action.POLICY_CHANGED)
    assert event.detail["changed"]["lockout_failures"] == [5, 3]

    with pytest.raises(InvalidInput) as info:
        policy_update(actor=scenario.secadmin, lockout_failures=10, password_min_length=6)
    assert set(info.value.detail) == {"lockout_failures", "password_min_length"}
    with pytest.raises(Forbidden):
        policy_update(actor=scenario.sysadmin, lockout_failures=4)


@pytest.mark.django_db
def test_the_policy_page_is_for_the_security_admin_only(scenario):
    client = Client()
    client.force_login(scenario.teacher)
    assert client.get("/audit/policy/").status_code == 403
    TOTPDevice.objects.create(user=scenario.secadmin, name="totp", confirmed=True)
    client = Client()
    _login(client, "p_secadmin")
    device = TOTPDevice.objects.get(user=scenario.secadmin)
    client.post("/audit/account/otp/login/", {"otp": totp_now(device)})
    response = client.post("/audit/policy/", {**_policy_form(), "idle_timeout_minutes": "12"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=Action.POLICY_CHANGED, actor_username="p_secadmin").exists()
    below = client.post("/audit/policy/", {**_policy_form(), "lockout_minutes": "5"})
    assert below.status_code == 200 and "is-invalid" in below.content.decode()


def _policy_form():
    from audit.models import SecurityPolicy
    from audit.policy import EDITABLE

    defaults = SecurityPolicy()
    return {name: str(getattr(defaults, name)) for name in EDITABLE}


@pytest.mark.django_db
def test_reauthentication_is_needed_before_a_dangerous_action(scenario, rf):
    from django.contrib.sessions.backends.db import SessionStore
    from django.http import HttpResponse

    from audit.security import reauth_confirm, reauth_required

    @reauth_required
    def delete_desktop(request):
        return HttpResponse("deleted")

    request = rf.post("/compute/desktops/1/delete/", HTTP_REFERER="/compute/desktops/1/")
    request.user, request.session = scenario.teacher, SessionStore()
    first = delete_desktop(request)
    assert first.status_code == 302 and first.url.startswith("/audit/reauth/")

    assert not reauth_confirm(request=request, password="wrong")
    assert reauth_confirm(request=request, password=PASSWORD)
    assert delete_desktop(request).status_code == 200

    api_request = rf.delete("/api/v1/desktops/1/", HTTP_X_REAUTH_PASSWORD=PASSWORD)
    api_request.user, api_request.session = scenario.teacher, SessionStore()
    assert delete_desktop(api_request).status_code == 200
    refused = rf.delete("/api/v1/desktops/1/")
    refused.user, refused.session = scenario.teacher, SessionStore()
    response = delete_desktop(refused)
    assert response.status_code == 403 and json.loads(response.content)["code"] == AuditError.REAUTHENTICATION_REQUIRED


@pytest.mark.django_db
def test_wrong_one_time_codes_count_toward_the_lockout(scenario, auditor_device):
    client = Client()
    _login(client, "a_auditor")
    wrong = "000000" if totp_now(auditor_device) != "000000" else "111111"
    responses = [client.post("/audit/account/otp/login/", {"otp": wrong}) for _attempt in range(5)]

    assert responses[-1].status_code == 403
    assert AuditEvent.objects.filter(action=Action.SECOND_FACTOR_FAILED, actor_username="a_auditor").count() == 5
    assert _login(Client(), "a_auditor").status_code == 403  # the password alone no longer gets in


@pytest.mark.django_db
def test_a_password_alone_cannot_replace_an_enrolled_second_factor(scenario, auditor_device):
    client = Client()
    client.force_login(scenario.auditor)  # e.g. through the admin's own login page: password only

    response = client.get("/audit/account/otp/enrol/?restart=1")

    assert response.status_code == 302 and response.url.startswith("/audit/account/otp/verify/")
    assert not TOTPDevice.objects.filter(user=scenario.auditor, confirmed=False).exists()


@pytest.mark.django_db
def test_five_wrong_codes_on_the_verify_page_end_the_session(scenario, auditor_device):
    client = Client()
    client.force_login(scenario.auditor)
    wrong = "000000" if totp_now(auditor_device) != "000000" else "111111"
    responses = [client.post("/audit/account/otp/verify/", {"otp": wrong}) for _attempt in range(5)]

    assert responses[-1].status_code == 403
    assert "_auth_user_id" not in client.session


def test_production_hashes_passwords_with_argon2id_at_owasp_parameters():
    from django.contrib.auth.hashers import identify_hasher, make_password
    from django.test.utils import override_settings

    # The tests run with a fast MD5 hasher; the project's own list is the settings module's.
    from portal import settings as portal_settings

    with override_settings(PASSWORD_HASHERS=portal_settings.PASSWORD_HASHERS):
        encoded = make_password("Campus#Cloud2026")
        assert encoded.startswith("argon2$argon2id$")
        assert "m=19456,t=2,p=1" in encoded
        assert identify_hasher(encoded).algorithm == "argon2"


@pytest.mark.django_db
def test_an_older_pbkdf2_hash_still_logs_in_and_is_rehashed_with_argon2id(scenario):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.test.utils import override_settings

    from portal import settings as portal_settings

    user = scenario.student
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "oldsalt123456789", iterations=1000)
    user.save(update_fields=["password"])
    with override_settings(PASSWORD_HASHERS=portal_settings.PASSWORD_HASHERS):
        response = _login(Client(), user.username)
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")

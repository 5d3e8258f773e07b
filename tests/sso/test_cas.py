"""CAS sign-in against the real CAS server of the harness, through the live portal, as a browser would."""

import socket
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from axes.models import AccessAttempt

from audit.models import AuditEvent
from tenants.identity.models import AccountState, ExternalIdentity
from tenants.models import User
from tests import factories
from tests.sso.cas import CasServer

pytestmark = [pytest.mark.sso, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _service_of(live_server, session, next_page="/"):
    """The portal sends the browser to the CAS server; the service URL it names is where tickets go."""
    response = session.get(f"{live_server.url}/accounts/cas/login/", params={"next": next_page}, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    return parse_qs(urlparse(response.headers["Location"]).query)["service"][0]


def _with_ticket(service: str, ticket: str) -> str:
    return f"{service}{'&' if '?' in service else '?'}ticket={ticket}"


def _cas_sign_in(live_server, cas, username):
    session = requests.Session()
    service = _service_of(live_server, session)
    answer = cas.sign_in(session, username, service)
    assert answer.status_code == 302, answer.text[:300]
    final = session.get(answer.headers["Location"])
    return session, final


def _last(action):
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


def test_a_roster_student_signs_in_through_cas_and_lands_on_the_dashboard(live_server, cas_on, roster):
    _session, page = _cas_sign_in(live_server, cas_on, "s20260001")

    assert page.status_code == 200 and urlparse(page.url).path == "/"
    user = User.objects.get(student_number="20260001")
    assert ExternalIdentity.objects.get(user=user, source="cas").subject == "s20260001"
    assert _last("auth.login").detail == {"source": "cas"}
    assert _last("account.activated").object_id == str(user.pk)


def test_cas_2_with_the_student_number_as_the_cas_user(live_server, cas_on, roster, settings):
    settings.CAS_VERSION = "2"
    settings.CAS_NUMBER_ATTRIBUTE = "cas:user"

    _session, page = _cas_sign_in(live_server, cas_on, "20260004")

    assert urlparse(page.url).path == "/"
    assert ExternalIdentity.objects.get(subject="20260004").user.username == "20260004"


def test_a_replayed_ticket_is_refused_with_an_audit_event(live_server, cas_on, roster):
    first = requests.Session()
    service = _service_of(live_server, first)
    ticket = cas_on.ticket_for("s20260001", service)
    assert first.get(_with_ticket(service, ticket)).status_code == 200

    replay = requests.Session()
    response = replay.get(_with_ticket(service, ticket))

    assert response.status_code == 403
    assert "票据无效或已过期" in response.text
    event = _last("auth.login_failed")
    assert event.detail == {"source": "cas"} and "INVALID_TICKET" in event.reason


def test_a_forged_ticket_is_refused_with_an_audit_event(live_server, cas_on, roster):
    session = requests.Session()
    service = _service_of(live_server, session)

    response = session.get(_with_ticket(service, "ST-forged-0123456789abcdef"))

    assert response.status_code == 403
    assert "INVALID_TICKET" in _last("auth.login_failed").reason
    assert not ExternalIdentity.objects.exists()


def test_a_ticket_for_another_service_is_refused(live_server, cas_on, roster):
    ticket = cas_on.ticket_for("s20260001", f"{live_server.url}/other/app/")
    session = requests.Session()
    service = _service_of(live_server, session)

    response = session.get(_with_ticket(service, ticket))

    assert response.status_code == 403
    assert "INVALID_SERVICE" in _last("auth.login_failed").reason


def test_an_expired_ticket_is_refused(live_server, roster, settings):
    short = CasServer(ticket_validity=1).start()
    try:
        settings.CAS_SERVER_URL = short.url
        session = requests.Session()
        service = _service_of(live_server, session)
        ticket = short.ticket_for("s20260001", service)
        time.sleep(2.5)
        response = session.get(_with_ticket(service, ticket))
    finally:
        short.stop()

    assert response.status_code == 403
    assert "INVALID_TICKET" in _last("auth.login_failed").reason


def test_the_cas_servers_logout_request_ends_the_portal_session(live_server, cas_on, roster):
    session, page = _cas_sign_in(live_server, cas_on, "s20260002")
    assert urlparse(page.url).path == "/"

    session.get(f"{cas_on.url}logout")  # the CAS server sends its logoutRequest to the portal

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = session.get(f"{live_server.url}/", allow_redirects=False)
        if response.status_code == 302:
            break
        time.sleep(0.2)
    assert response.status_code == 302 and "/accounts/login/" in response.headers["Location"]
    assert _last("auth.logout").reason == "CAS single logout"


def test_a_privileged_role_still_needs_totp_after_cas(live_server, cas_on, scenario):
    User.objects.filter(pk=scenario.finance.pk).update(student_number="T1001")

    _session, page = _cas_sign_in(live_server, cas_on, "t1001")

    assert urlparse(page.url).path == "/audit/account/otp/enrol/"
    assert AccountState.objects.get(user=scenario.finance).last_login_mfa == "totp"


def test_a_second_factor_asserted_by_cas_is_accepted_and_recorded(live_server, cas_on, scenario):
    User.objects.filter(pk=scenario.finance.pk).update(student_number="A9001")

    _session, page = _cas_sign_in(live_server, cas_on, "mfa_admin")

    assert urlparse(page.url).path == "/"
    assert AccountState.objects.get(user=scenario.finance).last_login_mfa == "cas:mfa-totp"
    assert _last("auth.login").detail == {"source": "cas", "mfa": "cas:mfa-totp"}


def test_a_person_on_no_roster_lands_on_the_page_saying_whom_to_ask(live_server, cas_on, roster):
    _session, page = _cas_sign_in(live_server, cas_on, "s20269999")

    assert urlparse(page.url).path == "/accounts/welcome/"
    assert "您的账号已开通" in page.text


def test_an_account_locked_out_by_failed_logins_cannot_come_in_through_cas(live_server, cas_on, roster):
    client = requests.Session()
    for _attempt in range(5):
        page = client.get(f"{live_server.url}/accounts/login/")
        token = client.cookies["csrftoken"]
        client.post(
            f"{live_server.url}/accounts/login/",
            data={"username": "20260001", "password": "wrong", "csrfmiddlewaretoken": token},
            headers={"Referer": page.url},
        )
    assert AccessAttempt.objects.filter(username="20260001").exists()

    _session, page = _cas_sign_in(live_server, cas_on, "s20260001")

    assert page.status_code == 403
    assert "已停用或已锁定" in page.text


def test_a_cas_server_that_does_not_answer_fails_within_the_timeout_with_a_clear_message(live_server, roster, settings):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # takes connections, never answers
    settings.CAS_SERVER_URL = f"http://127.0.0.1:{silent.getsockname()[1]}/cas/"
    settings.CAS_TIMEOUT = 1.0
    try:
        session = requests.Session()
        service = _service_of(live_server, session)
        started = time.monotonic()
        response = session.get(_with_ticket(service, "ST-anything"))
        elapsed = time.monotonic() - started
    finally:
        silent.close()

    assert response.status_code == 403 and elapsed < 5
    assert "统一身份认证服务暂时无法访问" in response.text
    assert _last("auth.login_failed").reason.startswith("CAS server unreachable")


def test_the_login_page_offers_campus_sign_in_only_when_cas_is_configured(client, settings, db):
    settings.CAS_SERVER_URL = ""
    assert "统一身份认证登录" not in client.get("/accounts/login/").content.decode()
    settings.CAS_SERVER_URL = "http://127.0.0.1:1/cas/"
    assert "统一身份认证登录" in client.get("/accounts/login/").content.decode()
    settings.CAS_ONLY = True
    cas_only = client.get("/accounts/login/").content.decode()
    assert 'name="password"' not in cas_only and "平台管理员本地登录" in cas_only
    assert 'name="password"' in client.get("/accounts/login/?local=1").content.decode()


def test_a_linked_account_cannot_use_a_local_password_unless_the_security_admin_allows_it(
    live_server, cas_on, roster, scenario
):
    from tenants.accounts.services import account_local_password_set

    _cas_sign_in(live_server, cas_on, "s20260003")
    user = User.objects.get(student_number="20260003")
    user.set_password(factories.PASSWORD)
    user.save()

    def local_login():
        session = requests.Session()
        page = session.get(f"{live_server.url}/accounts/login/")
        return session.post(
            f"{live_server.url}/accounts/login/",
            data={"username": user.username, "password": factories.PASSWORD,
                  "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": page.url}, allow_redirects=False,
        )  # fmt: skip

    refused = local_login()
    account_local_password_set(actor=scenario.secadmin, user=user, allowed=True)
    allowed = local_login()

    assert refused.status_code == 200 and "请使用统一身份认证登录" in refused.text
    assert allowed.status_code == 302

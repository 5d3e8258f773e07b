"""Sign-in behind one address with several web processes: sessions and lockout counters live in the database."""

import pytest
import requests

from tests.sso.slapd import PASSWORD

pytestmark = [pytest.mark.sso, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _post_login(session, base, username, password):
    page = session.get(f"{base}/accounts/login/", timeout=30)
    return session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": page.url},
        allow_redirects=False,
        timeout=30,
    )


def test_a_session_made_by_one_web_process_is_honoured_by_another(portal_processes, roster):
    first, second = portal_processes
    browser = requests.Session()

    assert _post_login(browser, first, "s20260001", PASSWORD).status_code == 302

    response = browser.get(f"{second}/", allow_redirects=False, timeout=30)
    assert response.status_code == 200


def test_failed_sign_ins_on_two_web_processes_add_up_to_one_lockout(portal_processes, roster):
    first, second = portal_processes
    for attempt in range(5):
        _post_login(requests.Session(), portal_processes[attempt % 2], "s20260002", "wrong-password")

    locked = _post_login(requests.Session(), first, "s20260002", PASSWORD)
    also_locked = _post_login(requests.Session(), second, "s20260002", PASSWORD)

    assert locked.status_code == 403 and also_locked.status_code == 403

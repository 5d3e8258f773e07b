"""Under ASGI no request leaves its database connection open (portal/asgi.py).

Django runs each request's sync code on a thread of its own under ASGI; with persistent connections
(CONN_MAX_AGE > 0, the production default) every request used to leave a connection open that no
later request could reuse. A class start then ran MariaDB out of connections.
"""

import http.client
import threading
import time
from urllib.parse import urlparse

import pytest
from django.db import connection

from tenants.identity.tokens import token_issue
from tenants.models import User
from tests.harness.asgi import portal_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _connections_to_this_database(excluding: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s",
            [connection.settings_dict["NAME"], excluding],
        )
        return cursor.fetchone()[0]


def _get(url: str, path: str, headers: dict) -> int:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_concurrent_requests_under_asgi_leave_no_connection_open_with_conn_max_age_set():
    user = User.objects.create_user("conn_student", password="x-unused-1234")
    _token, key = token_issue(user=user, name="test", second_factor=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        mine = cursor.fetchone()[0]
    headers = {"Authorization": f"Token {key}"}
    statuses = []
    before = _connections_to_this_database(excluding=mine)  # another process of the test run's, if any
    with portal_process(CONN_MAX_AGE="60") as url:
        threads = [
            threading.Thread(target=lambda: statuses.append(_get(url, "/api/v1/users/me/", headers))) for _ in range(24)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 24
        # Every request is answered; a request closes its connection right after its response is sent,
        # so give the last ones a moment. Left open after that: left behind for good.
        deadline = time.monotonic() + 5
        while (left_open := _connections_to_this_database(excluding=mine) - before) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert left_open <= 0, f"{left_open} connections left open by 24 answered requests"

"""A request whose transaction MariaDB rolls back for another's row locks is told to try again, never
given a 500, and nothing of it is kept (portal.middleware.LockConflictMiddleware, common.ui.service_call,
common.api.errors).

The lock is real: another connection holds the account's row FOR UPDATE while the request grants the
account a role (tenants.services.membership_grant locks it too), and the request's connection waits one
second for it (innodb_lock_wait_timeout) instead of fifty.
"""

import importlib
import threading
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection, transaction
from django.test import Client

from common.errors import ErrorCode
from tenants.models import Membership, User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.SECOND_FACTOR_REQUIRED = False


@contextmanager
def account_locked(user):
    """``user``'s row held FOR UPDATE by another connection, and this one waiting a second for a lock."""
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                User.objects.select_for_update().get(pk=user.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(30)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
    try:
        yield
    finally:
        release.set()
        holder.join(30)
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT")


def _grants(user) -> int:
    return Membership.objects.filter(user=user, role="finance").count()


def test_the_api_answers_503_busy_with_retry_after_and_grants_nothing(scenario, api):
    client = api.as_user(scenario.tenant_admin)
    body = {"user": "a_student2", "tenant": "cs", "role": "finance"}

    with account_locked(scenario.student2):
        response = client.post("/api/v1/memberships/", body, format="json")

    assert response.status_code == 503
    assert response.json()["code"] == ErrorCode.BUSY
    assert "稍后重试" in response.json()["message"]
    assert response["Retry-After"] == "2"
    assert _grants(scenario.student2) == 0
    # The same request once the other transaction is done:
    assert client.post("/api/v1/memberships/", body, format="json").status_code == 201
    assert _grants(scenario.student2) == 1


def test_a_form_keeps_what_was_typed_and_says_to_try_again(scenario):
    client = Client()
    client.force_login(scenario.tenant_admin)

    with account_locked(scenario.student2):
        page = client.post("/tenants/t/cs/members/", {"username": "a_student2", "role": "finance"})

    assert page.status_code == 200
    html = page.content.decode()
    assert "另一项操作正在使用相同的数据" in html
    assert 'value="a_student2"' in html
    assert _grants(scenario.student2) == 0


def _members_page_raising(monkeypatch, error):
    """The members page, its rendering raising ``error`` (as a query of a template would)."""
    members = importlib.import_module("tenants.views.members")

    def raising(*args, **kwargs):
        raise error

    monkeypatch.setattr(members, "render", raising)


def test_a_page_that_loses_a_lock_outside_a_service_call_is_a_503_page_in_the_users_language(scenario, monkeypatch):
    _members_page_raising(monkeypatch, OperationalError(1213, "Deadlock found when trying to get lock"))
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(scenario.tenant_admin)

    page = client.get("/tenants/t/cs/members/")

    assert page.status_code == 503 and page["Retry-After"] == "2"
    assert "please try again" in page.content.decode().lower()


def test_another_database_error_is_still_a_500(scenario, monkeypatch):
    _members_page_raising(monkeypatch, OperationalError(2006, "MySQL server has gone away"))
    client = Client(raise_request_exception=False)
    client.force_login(scenario.tenant_admin)

    assert client.get("/tenants/t/cs/members/").status_code == 500

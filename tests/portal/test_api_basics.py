"""The API skeleton: token login, the caller's profile, the error format, bad input."""

import pytest

from common.errors import ErrorCode
from portal.errors import PortalError

pytestmark = pytest.mark.django_db


def test_token_login_returns_a_token_that_authenticates(scenario, client):
    response = client.post(
        "/api/v1/auth/token/",
        {"username": scenario.teacher.username, "password": "Test@2026!pw"},
        content_type="application/json",
    )
    assert response.status_code == 200
    token = response.json()["token"]

    me = client.get("/api/v1/users/me/", HTTP_AUTHORIZATION=f"Token {token}")

    assert me.status_code == 200
    assert me.json() == {
        "username": "a_teacher",
        "display_name": "用户 a_teacher",
        "roles": ["teacher"],
        "platform_role": None,
        "tenants": [{"slug": "cs", "name": "计算机学院", "role": "teacher"}],
    }


def test_a_wrong_password_does_not_say_which_half_was_wrong(scenario, client):
    wrong_password = client.post(
        "/api/v1/auth/token/", {"username": "a_teacher", "password": "nope"}, content_type="application/json"
    )
    unknown_user = client.post(
        "/api/v1/auth/token/", {"username": "nobody", "password": "nope"}, content_type="application/json"
    )

    assert wrong_password.status_code == unknown_user.status_code == 400
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.json()["code"] == PortalError.INVALID_CREDENTIALS


def test_platform_admin_profile_names_the_platform_role(scenario, api):
    body = api.as_user(scenario.secadmin).get("/api/v1/users/me/").json()

    assert body["platform_role"] == "security_admin"
    assert body["roles"] == ["security_admin"]
    assert body["tenants"] == []


def test_anonymous_caller_gets_401_in_the_error_format(client):
    response = client.get("/api/v1/users/me/")

    assert response.status_code == 401
    assert response.json()["code"] == ErrorCode.NOT_AUTHENTICATED
    assert set(response.json()) == {"code", "message", "detail"}


def test_malformed_json_is_a_400_with_a_code(client, db):
    response = client.post("/api/v1/auth/token/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == ErrorCode.MALFORMED_REQUEST


def test_missing_fields_are_listed_in_the_detail(client, db):
    response = client.post("/api/v1/auth/token/", {}, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == ErrorCode.INVALID
    assert set(response.json()["detail"]) == {"username", "password"}


def test_error_messages_follow_the_callers_language(client, db):
    chinese = client.get("/api/v1/users/me/", HTTP_ACCEPT_LANGUAGE="zh-CN").json()
    english = client.get("/api/v1/users/me/", HTTP_ACCEPT_LANGUAGE="en").json()

    assert chinese["message"] == "请先登录。"
    assert english["message"] == "Please log in first."


def test_an_oversized_body_is_refused_with_413(client, settings, db):
    settings.MAX_REQUEST_BODY = 1024

    response = client.post("/api/v1/auth/token/", "x" * 2048, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["code"] == ErrorCode.REQUEST_TOO_LARGE


def test_an_unknown_api_url_is_a_json_404(client, db):
    response = client.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json()["code"] == ErrorCode.NOT_FOUND


def test_auditors_cannot_write_through_the_api(scenario, api):
    response = api.as_user(scenario.auditor).post("/api/v1/auth/token/", {}, format="json")
    # The token endpoint is open to everyone; a write endpoint behind the default
    # permissions refuses an auditor before looking at the body.
    assert response.status_code == 400

    from portal.api.permissions import AuditorsReadOnly

    class Request:
        method = "POST"
        user = scenario.auditor

    assert AuditorsReadOnly().has_permission(Request(), None) is False
    Request.method = "GET"
    assert AuditorsReadOnly().has_permission(Request(), None) is True
    Request.method, Request.user = "POST", scenario.teacher
    assert AuditorsReadOnly().has_permission(Request(), None) is True


def test_schema_and_docs_are_served_locally(client, db):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"openapi: 3" in schema.content
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()
    assert b"/static/drf_spectacular_sidecar/" in docs.content

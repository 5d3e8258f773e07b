"""Reading a campus identity strictly, token lifetimes, and the 等保 check that covers every way in."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.compliance import run_checks
from tenants.identity.errors import ErrorCode
from tenants.identity.identity import IdentityRefused, identity_from_attributes
from tests import factories

NAMES = {"name": "cn", "email": "mail", "department": "departmentNumber"}


def _identity(attributes, number_attribute="employeeNumber"):
    return identity_from_attributes(
        source="ldap", subject="s1", attributes=attributes, number_attribute=number_attribute, names=NAMES
    )


def test_a_number_the_directory_could_not_decode_is_refused_and_the_log_names_the_attribute(caplog):
    with caplog.at_level(logging.WARNING, logger="tenants.identity"), pytest.raises(IdentityRefused) as refused:
        _identity({"employeeNumber": [b"\xff\xfe2026"], "cn": ["张三"]})

    assert refused.value.code == ErrorCode.IDENTITY_ATTRIBUTE_INVALID
    assert refused.value.detail == {"attribute": "employeeNumber"}
    assert "attribute employeeNumber is not UTF-8" in caplog.text


def test_a_name_in_an_unexpected_encoding_is_refused_too():
    with pytest.raises(IdentityRefused) as refused:
        _identity({"employeeNumber": ["20260001"], "cn": [b"\xd5\xc5\xc8\xfd"]})  # GBK bytes, not UTF-8

    assert refused.value.detail == {"attribute": "cn"}


def test_the_descriptive_attributes_are_read_and_staff_recognised():
    identity = _identity(
        {"employeeNumber": ["T1001"], "cn": ["陈老师"], "departmentNumber": ["CS"], "eduPersonAffiliation": ["faculty"]}
    )
    assert (identity.number, identity.name, identity.department, identity.staff) == ("T1001", "陈老师", "cs", True)


@pytest.mark.django_db
def test_an_api_token_expires_after_api_token_hours_and_a_new_one_is_issued(scenario, settings):
    settings.API_TOKEN_HOURS = 12
    first = Client().post("/api/v1/auth/token/", {"username": "a_student", "password": factories.PASSWORD}).json()
    issued = timezone.now()
    assert abs((timezone.datetime.fromisoformat(first["expires_at"]) - issued) - timedelta(hours=12)) < timedelta(
        minutes=1
    )

    with time_machine.travel(issued + timedelta(hours=13)):
        expired = Client().get("/api/v1/users/me/", HTTP_AUTHORIZATION=f"Token {first['token']}")
        again = Client().post("/api/v1/auth/token/", {"username": "a_student", "password": factories.PASSWORD}).json()

    assert expired.status_code == 401
    assert again["token"] != first["token"]


@pytest.mark.django_db
def test_the_dengbao_check_names_every_way_in_and_wants_ldap_over_tls(scenario, settings):
    settings.LDAP_SERVER_URI = "ldap://127.0.0.1:1"
    settings.LDAP_START_TLS = False
    settings.CAS_SERVER_URL = "https://cas.campus.test/cas/"
    result = next(r for r in run_checks(3) if r["id"] == "ia.sso")
    assert result["status"] == "partial" and "local、cas、ldap" in result["evidence"]
    assert "StartTLS" in result["evidence"]

    settings.LDAP_START_TLS = True
    assert next(r for r in run_checks(3) if r["id"] == "ia.sso")["status"] == "conform"

"""Fixtures of the audit tests: a clean policy cache and TOTP helpers."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_policy_cache():
    # The policy is cached per process; a test that changed it must not leak into the next.
    from audit.policy import CACHE_KEY

    cache.delete(CACHE_KEY)
    yield
    cache.delete(CACHE_KEY)


def totp_now(device, offset: int = 0) -> str:
    """The code an authenticator app would show now (offset in steps)."""
    import time

    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset * device.step
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture
def auditor_client(scenario):
    """A client signed in as the scenario's auditor, with the second factor."""
    from django.test import Client
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.factories import PASSWORD

    device = TOTPDevice.objects.create(user=scenario.auditor, name="totp", confirmed=True)
    client = Client()
    client.post("/accounts/login/", {"username": "a_auditor", "password": PASSWORD})
    assert client.post("/audit/account/otp/login/", {"otp": totp_now(device)}).status_code == 302
    return client

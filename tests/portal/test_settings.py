"""Production settings: `check --deploy` is clean, unsafe settings refuse to start."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, **env):
    # The browser harness allows async-unsafe calls in the test process; a deployment never does.
    dropped = {"DJANGO_ENV", "SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
    "FIELD_ENCRYPTION_KEY": secrets.token_urlsafe(32),
    "ALLOWED_HOSTS": "cloud.example.edu",
}


def test_check_deploy_reports_no_issues_with_the_documented_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_development_secret_key():
    result = _manage("check", **{**PRODUCTION, "SECRET_KEY": ""})

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_debug():
    result = _manage("check", **{**PRODUCTION, "DEBUG": "true"})

    assert result.returncode != 0
    assert "DEBUG" in result.stderr


def test_production_refuses_a_missing_field_encryption_key():
    result = _manage("check", **{**PRODUCTION, "FIELD_ENCRYPTION_KEY": ""})

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY" in result.stderr


def test_production_refuses_a_missing_audit_hmac_key():
    result = _manage("check", **{**PRODUCTION, "AUDIT_HMAC_KEY": ""})

    assert result.returncode != 0
    assert "AUDIT_HMAC_KEY" in result.stderr


def test_production_refuses_keys_that_are_the_secret_key():
    for name in ("AUDIT_HMAC_KEY", "FIELD_ENCRYPTION_KEY"):
        result = _manage("check", **{**PRODUCTION, name: PRODUCTION["SECRET_KEY"]})

        assert result.returncode != 0, name
        assert name in result.stderr


def test_seed_demo_refuses_to_run_in_production():
    result = _manage("seed_demo", **{**PRODUCTION, "DEMO_PASSWORD": "Own#Demo-2026"})

    assert result.returncode != 0
    assert "--force-production" in result.stderr


def test_seed_demo_forced_in_production_still_refuses_the_public_demo_password():
    for password in ("", "Demo@2026!"):
        env = {**PRODUCTION, "DEMO_PASSWORD": password} if password else dict(PRODUCTION)
        result = _manage("seed_demo", "--force-production", **env)

        assert result.returncode != 0, password
        assert "DEMO_PASSWORD" in result.stderr

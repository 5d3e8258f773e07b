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

"""seed_demo outside production: it runs, and says the demo accounts' password is public."""

import json

import pytest
from django.core.management import call_command
from django.db import OperationalError

from portal.management.commands import seed_demo


@pytest.fixture
def no_seeders(monkeypatch):
    # The guard is what is tested here; the seeders have their own tests (tests/*/test_demo.py).
    monkeypatch.setattr(seed_demo, "SEEDERS", [])


def test_seed_demo_warns_in_development_that_the_demo_password_is_public(no_seeders, settings, capsys):
    settings.DEMO_PASSWORD = settings.DEMO_PASSWORD_DEFAULT

    call_command("seed_demo")

    assert "WARNING" in capsys.readouterr().err


def test_seed_demo_does_not_warn_with_a_password_of_its_own(no_seeders, settings, capsys):
    settings.DEMO_PASSWORD = "Own#Demo-2026"

    call_command("seed_demo")

    assert "WARNING" not in capsys.readouterr().err


def test_seed_demo_forced_in_production_runs_with_a_password_of_its_own(no_seeders, settings, capsys):
    settings.PRODUCTION = True
    settings.DEMO_PASSWORD = "Own#Demo-2026"

    call_command("seed_demo", "--force-production", "--json")

    assert capsys.readouterr().out.strip() == "{}"


def _seeder_failing_once(code):
    calls = []

    def seeder():
        calls.append(code)
        if len(calls) == 1:
            raise OperationalError(code, "from the test")
        return {"made": len(calls)}

    return seeder, calls


def test_a_seeder_mariadb_picks_as_a_deadlock_victim_runs_again(monkeypatch, settings, capsys):
    settings.DEMO_PASSWORD = "Own#Demo-2026"
    seeder, calls = _seeder_failing_once(1213)
    monkeypatch.setattr(seed_demo, "SEEDERS", [("flaky", seeder)])
    monkeypatch.setattr("common.db.backoff_seconds", lambda attempt: 0)

    call_command("seed_demo", "--json")

    assert json.loads(capsys.readouterr().out) == {"flaky": {"made": 2}}
    assert len(calls) == 2


def test_a_seeder_failing_otherwise_is_not_run_again(monkeypatch, settings):
    settings.DEMO_PASSWORD = "Own#Demo-2026"
    seeder, calls = _seeder_failing_once(2006)  # MySQL server has gone away
    monkeypatch.setattr(seed_demo, "SEEDERS", [("flaky", seeder)])

    with pytest.raises(OperationalError):
        call_command("seed_demo", "--json")
    assert len(calls) == 1

"""seed_demo outside production: it runs, and says the demo accounts' password is public."""

import pytest
from django.core.management import call_command

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

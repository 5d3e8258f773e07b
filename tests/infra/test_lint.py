"""The import rules are checked by a machine: lint-imports (``make lint``, .importlinter) fails when an
app imports a higher one, or when compute.drivers imports Django or anything else of ours."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("portal", "billing", "compute", "network", "tenants", "audit", "common")


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the apps' code and of .importlinter, where a test may add an import."""
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    return tmp_path


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)


def test_the_apps_as_they_are_keep_the_contracts(checkout):
    result = lint_imports(checkout)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("lower", "higher"), [("tenants", "portal"), ("network", "compute"), ("common", "audit")])
def test_a_lower_app_importing_a_higher_one_fails_the_layers_contract(checkout, lower, higher):
    (checkout / lower / "lint_probe.py").write_text(f"import {higher}.models\n")

    result = lint_imports(checkout)

    assert result.returncode != 0
    assert "Apps import downwards only" in result.stdout and "BROKEN" in result.stdout
    assert f"{lower}.lint_probe -> {higher}.models" in result.stdout


def test_a_driver_importing_django_or_a_compute_model_fails_the_drivers_contract(checkout):
    (checkout / "compute" / "drivers" / "lint_probe.py").write_text("import django.db\nimport compute.models\n")

    result = lint_imports(checkout)

    assert result.returncode != 0
    assert "compute.drivers knows no Django and nothing of ours BROKEN" in result.stdout
    assert "compute.drivers is not allowed to import django" in result.stdout
    assert "compute.drivers.lint_probe -> django (l.1)" in result.stdout
    assert "compute.drivers is not allowed to import compute.models" in result.stdout

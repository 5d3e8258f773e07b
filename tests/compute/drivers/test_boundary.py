"""The drivers' boundary: found by kind through one registry, each kind's SDK loaded only when it is used."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compute.drivers import DRIVERS, DriverError, ErrorCode, open_driver

ROOT = Path(__file__).resolve().parents[3]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter at the repository root (no Django set up) and return its output."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_an_unknown_kind_is_a_permanent_invalid_spec():
    with pytest.raises(DriverError) as err:
        open_driver("hyperv", "x")
    assert err.value.permanent and err.value.code == ErrorCode.INVALID_SPEC


def test_every_registered_kind_opens_a_driver_of_that_kind():
    urls = {"libvirt": "test:///default", "vcenter": "https://vcenter.example/sdk"}
    assert set(DRIVERS) == set(urls)
    for kind, url in urls.items():
        driver = open_driver(kind, url)  # connects on first use only
        assert driver.kind == kind and driver.url == url
        driver.close()


def test_a_kinds_sdk_is_loaded_only_when_that_kind_is_opened():
    loaded = run_python(
        """
        import sys
        import compute.drivers
        before = {"libvirt" in sys.modules, "pyVmomi" in sys.modules}
        compute.drivers.open_driver("libvirt", "test:///default").close()
        print(before, "libvirt" in sys.modules, "pyVmomi" in sys.modules)
        """
    )
    assert loaded == "{False} True False"

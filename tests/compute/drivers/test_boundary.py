"""The drivers' boundary: one registry of kinds, one protocol every driver fills, no Django and nothing of ours."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compute.drivers import DRIVERS, DriverError, ErrorCode, ForwardSpec, HypervisorDriver, open_driver

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


def driver_class(kind: str) -> type:
    return type(open_driver(kind, "test:///default" if kind == "libvirt" else "https://vcenter.example/sdk"))


def protocol_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(HypervisorDriver).items()
        if callable(member) and not name.startswith("_")
    }


def test_every_driver_has_every_protocol_method_with_its_signature():
    methods = protocol_methods()
    assert {"forward_set", "forward_remove", "forward_keys", "attach_volume", "pool_ensure"} <= set(methods)
    for kind in DRIVERS:
        cls = driver_class(kind)
        for name, wanted in methods.items():
            assert callable(getattr(cls, name, None)), (kind, name)
            assert list(inspect.signature(getattr(cls, name)).parameters) == list(wanted.parameters), (kind, name)


def test_every_driver_method_the_portal_calls_is_in_the_protocol():
    """Method names called on a driver anywhere in the portal's code, read from the source."""
    called = set()
    pattern = re.compile(r"\b(?:driver|driver_for\([^()]*\))\.([a-z]\w*)\(")
    for app in ("compute", "network", "bench"):
        for path in (ROOT / app).rglob("*.py"):
            if "drivers" not in path.relative_to(ROOT).parts:
                called |= set(pattern.findall(path.read_text()))
    assert {"forward_set", "get_vm", "create_vm"} <= called
    assert called <= set(protocol_methods())


def test_vcenter_refuses_host_firewall_rules_as_unsupported():
    driver = open_driver("vcenter", "https://vcenter.example/sdk")
    spec = ForwardSpec(key="eip-1", public_ip="192.0.2.10", private_ip="10.0.0.5", bridge="virbr1")
    for call in (lambda: driver.forward_set(spec), lambda: driver.forward_remove("eip-1"), driver.forward_keys):
        with pytest.raises(DriverError) as err:
            call()
        assert err.value.permanent and err.value.code == ErrorCode.UNSUPPORTED


def test_a_driver_error_code_is_an_error_code():
    err = DriverError("gone", permanent=True, code=ErrorCode.NOT_FOUND)
    assert err.code is ErrorCode.NOT_FOUND and err.code == "not_found" and f"{err.code}" == "not_found"
    with pytest.raises(ValueError):
        DriverError("x", permanent=True, code="no_such_code")


def test_drivers_import_no_django_and_nothing_of_ours_outside_compute_drivers():
    ours = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() or (p / "apps.py").exists())
    leaked = run_python(
        f"""
        import importlib, pkgutil, sys
        import compute.drivers
        for module in pkgutil.walk_packages(compute.drivers.__path__, "compute.drivers."):
            importlib.import_module(module.name)
        ours = {ours!r}
        print(sorted(
            name for name in sys.modules
            if name.split(".")[0] == "django"
            or (name.split(".")[0] in ours and name != "compute" and not name.startswith("compute.drivers"))
        ))
        """
    )
    assert leaked == "[]"

"""The marker guard (tests/harness/markers.py): a test that needs a real component and lacks its
marker fails, so ``make test-fast`` never runs it by mistake."""

import os
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness.markers import (
    program_marker,
    touches,
    watched_libvirt_open,
    watched_vcenter_connect,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("command", "marker"),
    [
        ([sys.executable, "-m", "celery", "-A", "portal", "worker"], "worker"),
        ([sys.executable, "-m", "uvicorn", "portal.asgi:application"], "worker"),
        (["/work/x/tools/vcsim/bin/vcsim", "-l", "127.0.0.1:0"], "vcsim"),
        (["/work/x/scripts/vcsim.sh", "build"], "vcsim"),
        (["/venv/lib/python3.11/site-packages/playwright/driver/node", "cli.js", "run-driver"], "browser"),
        (["/usr/bin/chromium", "--headless"], "browser"),
        (["virsh", "-c", "qemu:///system", "dumpxml", "x"], "libvirt"),
        ("iptables -w 5 -t nat -S", "libvirt"),
    ],
)
def test_a_process_of_a_real_component_names_its_marker(command, marker):
    assert program_marker(command)[0] == marker


@pytest.mark.parametrize(
    "command",
    [["qemu-img", "info", "x.qcow2"], ["ip", "-4", "route"], [sys.executable, "manage.py", "check"], ""],
)
def test_a_local_tool_is_no_real_component(command):
    assert program_marker(command) is None


def test_a_real_libvirtd_is_noted_and_the_test_driver_is_not():
    opener = watched_libvirt_open(lambda name=None, *args: f"connection to {name}")

    assert opener("test:///default") == "connection to test:///default"
    assert touches.take() == []
    assert opener("qemu+unix:///system?socket=/tmp/x") == "connection to qemu+unix:///system?socket=/tmp/x"
    assert [marker for marker, _ in touches.take()] == ["libvirt"]


def test_a_vcenter_login_is_noted_only_when_it_succeeds():
    def refused(**kwargs):
        raise ConnectionRefusedError

    with pytest.raises(ConnectionRefusedError):
        watched_vcenter_connect(refused)(host="127.0.0.1", port=1)
    assert touches.take() == []
    assert watched_vcenter_connect(lambda **kwargs: "si")(host="127.0.0.1", port=8989) == "si"
    assert [marker for marker, _ in touches.take()] == ["vcsim"]


def test_an_unmarked_test_that_touches_a_real_component_fails_and_a_marked_one_passes(pytester, monkeypatch):
    virsh = pytester.path / "bin" / "virsh"
    virsh.parent.mkdir()
    virsh.write_text("#!/bin/sh\nexit 0\n")
    virsh.chmod(0o755)
    pytester.makeini("[pytest]\nmarkers =\n    libvirt: x\n    worker: x\n    vcsim: x\n    browser: x\n")
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def celery_worker():
            return "a worker"
        """
    )
    pytester.makepyfile(
        test_inner=textwrap.dedent(
            f"""
            import subprocess

            import pytest

            def test_unmarked_runs_virsh():
                subprocess.run([{str(virsh)!r}], check=True)

            @pytest.mark.libvirt
            def test_marked_runs_virsh():
                subprocess.run([{str(virsh)!r}], check=True)

            def test_unmarked_uses_a_worker(celery_worker):
                pass

            @pytest.mark.worker
            def test_marked_uses_a_worker(celery_worker):
                pass
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))

    result = pytester.runpytest_subprocess("-p", "tests.harness.markers", "-p", "no:django", "-p", "no:xdist")

    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_unmarked_runs_virsh needs a real component without its marker*", "*virsh: mark it @pytest.mark.libvirt"]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_unmarked_uses_a_worker needs a real component without its marker*",
            "*fixture celery_worker: mark it @pytest.mark.worker",
        ]
    )

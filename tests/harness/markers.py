"""Every test that needs a real component carries its marker; one that touches a component without
it fails, so no such test slips into ``make test-fast`` (which deselects the marked ones).

The markers (declared in pyproject.toml):
  libvirt  the real libvirtd with QEMU, and the host firewall (iptables) it sits behind
  vcsim    the vCenter simulator
  browser  Chromium through Playwright, with pytest-django's live server it browses
  worker   another real service: a Celery worker, the portal under uvicorn, a live server

Two checks:
- at set-up, by fixture: the test (or a fixture it uses) asks for a fixture of a real component;
- while the test sets up and runs, by touch: a libvirt connection other than libvirt's in-memory
  test driver, a vCenter login, or a process of a real component started by the test process.
Teardown is not checked: session fixtures end in the last test's teardown, whichever test that is.
"""

import os
import subprocess
import threading

import pytest

MARKERS = ("libvirt", "vcsim", "browser", "worker", "testbed", "sso")

# fixture -> the markers any one of which a test using it must carry
FIXTURES = {
    "qemu_pool": {"libvirt"},
    "qemu_env": {"libvirt"},
    "qemu_driver": {"libvirt"},
    "qemu_conn": {"libvirt"},
    "qemu_prefix": {"libvirt"},
    "testbed": {"testbed"},
    "ldap_directory": {"sso"},
    "cas_server": {"sso"},
    "vcsim": {"vcsim"},
    "browser": {"browser"},
    "page": {"browser"},
    "celery_worker": {"worker"},
    "asgi_server": {"worker"},
    "live_server": {"worker", "browser"},
}

# program started by the test process -> marker
PROGRAMS = {
    "virsh": "libvirt",
    "iptables": "libvirt",
    "ip6tables": "libvirt",
    "ebtables": "libvirt",
    "vcsim": "vcsim",
    "vcsim.sh": "vcsim",
    "chromium": "browser",
}
PYTHON_MODULES = {"celery": "worker", "uvicorn": "worker"}  # python -m <module>


class Touches:
    """What the running test touched: (marker, what) pairs, from any thread of the test process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._seen: list[tuple[str, str]] = []

    def add(self, marker: str, what: str) -> None:
        with self._lock:
            self._seen.append((marker, what))

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            seen, self._seen = self._seen, []
        return seen


touches = Touches()


def program_marker(args) -> tuple[str, str] | None:
    """(marker, command) for a command line that starts a real component, else None."""
    argv = [os.fspath(a) for a in ([args] if isinstance(args, str | bytes | os.PathLike) else args)]
    argv = [a.decode() if isinstance(a, bytes) else a for a in argv]
    if not argv or not argv[0].strip():
        return None
    command = " ".join(argv)
    if any("/playwright/driver/" in a for a in argv[:2]):
        return "browser", command
    program = os.path.basename(argv[0].split()[0])
    if program in PROGRAMS:
        return PROGRAMS[program], command
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        if module in PYTHON_MODULES:
            return PYTHON_MODULES[module], command
    return None


def watched_popen_init(init):
    """``subprocess.Popen.__init__`` that notes a real component's process before starting it."""

    def __init__(self, args, *rest, **kwargs):
        found = program_marker(args)
        if found:
            touches.add(*found)
        init(self, args, *rest, **kwargs)

    return __init__


def watched_libvirt_open(open_):
    """A libvirt ``open``/``openAuth``/``openReadOnly`` that notes a connection to a real daemon."""

    def opener(name=None, *args):
        conn = open_(name, *args)
        if not (name or "").startswith("test:"):
            touches.add("libvirt", f"libvirt at {name or 'the default URI'}")
        return conn

    return opener


def watched_vcenter_connect(connect):
    """pyVim's ``Connect`` (SmartConnect logs in through it) that notes a vCenter answering."""

    def Connect(*args, **kwargs):  # noqa: N802 - pyVim's name
        si = connect(*args, **kwargs)
        touches.add("vcsim", f"a vCenter at {kwargs.get('host', args[0] if args else '?')}")
        return si

    return Connect


def pytest_configure(config):
    import libvirt
    from pyVim import connect

    subprocess.Popen.__init__ = watched_popen_init(subprocess.Popen.__init__)
    for name in ("open", "openAuth", "openReadOnly"):
        setattr(libvirt, name, watched_libvirt_open(getattr(libvirt, name)))
    connect.Connect = watched_vcenter_connect(connect.Connect)


def _carried(item) -> set[str]:
    return {mark.name for mark in item.iter_markers()} & set(MARKERS)


def _fail(item, problems: list[tuple[str, str]], cause: BaseException | None = None):
    lines = sorted({f"  {what}: mark it {mark}" for mark, what in problems})
    message = f"{item.nodeid} needs a real component without its marker (make test-fast would run it):\n"
    raise pytest.fail.Exception(message + "\n".join(lines), pytrace=False) from cause


def _check_touches(item, cause: BaseException | None = None) -> None:
    carried = _carried(item)
    problems = [(f"@pytest.mark.{marker}", what) for marker, what in touches.take() if marker not in carried]
    if problems:
        _fail(item, problems, cause)


# Innermost of the wrappers (logging's among them): a test refused here is reported like any error.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item):
    touches.take()
    carried = _carried(item)
    needed = [
        (" or ".join(f"@pytest.mark.{m}" for m in sorted(markers)), f"fixture {name}")
        for name, markers in FIXTURES.items()
        if name in getattr(item, "fixturenames", ()) and not markers & carried
    ]
    if needed:
        _fail(item, needed)
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    touches.take()
    return (yield from _guarded(item))


def _guarded(item):
    try:
        result = yield
    except (Exception, pytest.fail.Exception) as exc:
        _check_touches(item, exc)
        raise
    _check_touches(item)
    return result

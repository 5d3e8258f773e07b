"""The multi-host testbed (scripts/testbed.sh) as a session fixture: hypervisor hosts on two sites.

A pytest plugin that tests/conftest.py loads. `testbed` brings the testbed up, or reuses the one
that is up (a developer's, or another test process's under pytest-xdist), and takes it down after
the last test process using it, only when tests brought it up. Every host is a network namespace
`cc-<name>` with its own libvirtd on `qemu+tcp://<address>/system`; `host.run(...)` runs a
command inside it (its network, mounts and hostname; this machine's files otherwise, the
project's .venv included). Needs root, as the script does: without it the fixture fails.

Host agents (``manage.py host_agent`` started with ``host.popen``) own every device and namespace of
ours on their host (VXLAN devices, gateway namespaces, firewall chains) and prune what their database
does not name, so two test processes (pytest-xdist) never run agents on one testbed at once: starting
one takes the testbed's agents lock (``agents_lock``), held until the end of that test. Each test
process sends to agents on a Redis database of its own (``agents_broker_url``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "testbed.sh"


@dataclass(frozen=True)
class SharedArea:
    """A directory of its own on the testbed's shared storage, for one user's storage pool: libvirt refuses
    two pools on one target path, and test files (and a bench beside them) run at the same time."""

    dir: Path  # where it is on this machine
    path: str  # ... and inside every host

    def remove(self) -> None:
        """The directory with what is in it (golden images, desktops' disks)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def pool_xml(self, name: str) -> str:
        """A dir pool named ``name`` on this directory, for storagePoolCreateXML on each host."""
        return f"<pool type='dir'><name>{name}</name><target><path>{self.path}</path></target></pool>"


class TestbedFailed(RuntimeError):
    """scripts/testbed.sh or a command inside a host failed; the message carries its stderr."""

    __test__ = False


def _env(config: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **config, **(extra or {})}


@dataclass(frozen=True)
class Host:
    name: str
    uri: str
    site: str
    address: str  # on the management network: libvirtd, VNC, migrations
    data_address: str  # on the data network: tunnels between hosts
    netns: str
    config: dict[str, str] = field(repr=False, compare=False, hash=False)

    def command(self, *argv: str) -> list[str]:
        """The argv that runs `argv` inside this host (for a caller that starts it itself)."""
        return [str(SCRIPT), "exec", self.name, "--", *argv]

    def run(
        self, *argv: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the host and wait; output captured as text. A failure raises with its stderr."""
        result = subprocess.run(
            self.command(*argv), env=_env(self.config, env), capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise TestbedFailed(f"{' '.join(argv)} on {self.name} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def popen(self, *argv: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """Start argv inside the host (a host agent, a listener); the caller ends it. A host agent
        first takes the testbed's agents lock for the rest of the test (``agents_lock``)."""
        if "host_agent" in argv:
            agents_lock(self.netns.rsplit("-", 1)[0])
        return subprocess.Popen(self.command(*argv), env=_env(self.config, env), **kwargs)

    def pids(self) -> set[int]:
        """The processes in the host's network namespace (`ip netns pids`)."""
        out = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=True)
        return {int(pid) for pid in out.stdout.split()}

    def lose(self) -> None:
        """The "host lost" fault: every process of the host is killed; `bring_up` brings it back."""
        _script(self.config, "kill", self.name)

    def connect(self):
        """A libvirt connection to the host's daemon, over qemu+tcp from this machine; the caller closes it."""
        import libvirt

        return libvirt.open(self.uri)


@dataclass(frozen=True)
class Testbed:
    __test__ = False

    hosts: tuple[Host, ...]
    broker_url: str  # the testbed's own Redis, reachable from inside the hosts
    shared_path: str  # shared storage: the same directory at this path in every host
    shared_dir: Path  # ... and where it is on this machine
    state: Path
    config: dict[str, str] = field(repr=False, compare=False, hash=False)

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def __getitem__(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def site(self, slug: str) -> list[Host]:
        return [host for host in self.hosts if host.site == slug]

    def shared_area(self, name: str) -> SharedArea:
        """A new directory ``name`` on the shared storage (the caller removes it when done)."""
        directory = self.shared_dir / name
        directory.mkdir()
        return SharedArea(dir=directory, path=f"{self.shared_path}/{name}")


AGENTS_LOCK_TIMEOUT = 1200.0  # another process's test file of agent tests runs meanwhile
_agents_held: dict[str, object] = {}  # testbed prefix -> the open lock file (this process holds it)


def agents_lock(prefix: str) -> None:
    """This process alone runs host agents on the testbed ``prefix`` until ``agents_release``.

    Every host agent converges its whole host from its own database: it removes VXLAN devices
    (``ccvx*``), gateway namespaces (``ccgw*``) and chains no row of its names, and VNIs and network
    ids repeat between test databases. Agents of two test processes on one testbed would undo each
    other's work, so the second waits. Re-entrant within a process."""
    import time

    if prefix in _agents_held:
        return
    Path("/run/lock").mkdir(exist_ok=True)
    lock = open(f"/run/lock/{prefix}-testbed.agents.lock", "w")  # noqa: SIM115 - held past this call
    deadline = time.monotonic() + AGENTS_LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise TestbedFailed(f"another test process has run host agents on testbed {prefix} too long") from None
            time.sleep(0.5)
    _agents_held[prefix] = lock


def agents_release() -> None:
    """Let other test processes run host agents again (the end of the test that took the lock)."""
    while _agents_held:
        _prefix, lock = _agents_held.popitem()
        lock.close()  # closing the only descriptor releases the flock


@pytest.fixture(autouse=True)
def _agents_released():
    """Every test ends by releasing the agents lock if it took it; autouse, so after the test's own
    fixtures have stopped their agents and cleaned the hosts."""
    yield
    agents_release()


def agents_broker_url(bed: Testbed) -> str:
    """The testbed Redis database this test process sends host agents' work on: one per pytest-xdist
    worker (8-15), so no agent of another process takes it (other tests use 5 and 6)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return f"{bed.broker_url.rsplit('/', 1)[0]}/{8 + number % 8}"


def bed_config(**overrides: str) -> dict[str, str]:
    """The TESTBED_* settings naming a testbed: this process's environment, then `overrides`."""
    config = {key: value for key, value in os.environ.items() if key.startswith("TESTBED_")}
    config.pop("TESTBED_OWNER", None)
    return {**config, **overrides}


def _script(config: dict[str, str], *args: str, timeout: float = 300, extra: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(SCRIPT), *args], env=_env(config, extra), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise TestbedFailed(f"scripts/testbed.sh {' '.join(args)} exited {result.returncode}:\n{tail}")
    return result.stdout


def _parse(config: dict[str, str], out: str) -> Testbed:
    data = json.loads(out.strip().splitlines()[-1])
    return Testbed(
        hosts=tuple(Host(**host, config=config) for host in data["hosts"]),
        broker_url=data["broker"],
        shared_path=data["shared_path"],
        shared_dir=Path(data["shared_dir"]),
        state=Path(data["state"]),
        config=config,
    )


def describe(config: dict[str, str] | None = None) -> Testbed:
    """What the testbed named by `config` is (or would be), without touching it."""
    config = bed_config() if config is None else config
    return _parse(config, _script(config, "json"))


def bring_up(config: dict[str, str] | None = None, *, owner: str = "tests") -> Testbed:
    """`scripts/testbed.sh up`: idempotent; a testbed it creates is marked as the tests' own."""
    config = bed_config() if config is None else config
    return _parse(config, _script(config, "up", extra={"TESTBED_OWNER": owner}))


def bring_down(config: dict[str, str] | None = None) -> None:
    config = bed_config() if config is None else config
    _script(config, "down")


@contextmanager
def _locked(state: Path) -> Iterator[None]:
    # Not the script's own lock (/run/lock/<state>.lock), which `up` and `down` take inside this one.
    Path("/run/lock").mkdir(exist_ok=True)
    with open(f"/run/lock/{state.name}.users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _users(state: Path) -> Path:
    return state / "users"


def _live_users(state: Path) -> list[Path]:
    users = _users(state)
    return [p for p in users.iterdir() if Path(f"/proc/{p.name}").exists()] if users.is_dir() else []


def _made_by_tests(state: Path) -> bool:
    try:
        return (state / "owner").read_text().strip() == "tests"
    except FileNotFoundError:
        return False


@contextmanager
def leased(config: dict[str, str] | None = None) -> Iterator[Testbed]:
    """The testbed for this process, up while any test process holds a lease on it.

    Each process leaves a lease file (its pid) in the state directory; bringing up, leasing,
    releasing and taking down happen under one lock, so one process never takes the testbed
    down under another. A testbed a person brought up stays up.
    """
    config = bed_config() if config is None else config
    state = describe(config).state
    lease = _users(state) / str(os.getpid())
    with _locked(state):
        try:
            bed = bring_up(config)
        except TestbedFailed:
            if _made_by_tests(state) and not _live_users(state):
                bring_down(config)
            raise
        lease.parent.mkdir(exist_ok=True)
        lease.touch()
    try:
        yield bed
    finally:
        with _locked(state):
            lease.unlink(missing_ok=True)
            if _made_by_tests(state) and not _live_users(state):
                bring_down(config)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """Three hypervisor hosts: h1 and h2 on site `east`, h3 on site `west` (TESTBED_* changes them)."""
    try:
        with leased() as bed:
            yield bed
    except TestbedFailed as exc:
        pytest.fail(str(exc), pytrace=False)

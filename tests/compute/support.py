"""Helpers of the end-to-end compute tests: waiting on rows, a breakable path to libvirtd, a killable worker."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"
ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_state(desktop, *states, timeout: float = 60.0):
    def reached():
        desktop.refresh_from_db()
        return desktop.state in states

    try:
        wait_for(reached, timeout=timeout, what=f"desktop {desktop.pk} in {states}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is {desktop.state} ({desktop.last_error!r})") from None
    return desktop


class LibvirtPath:
    """A UNIX socket that forwards to libvirtd's, which a test can cut, stall or restore.

    ``qemu+unix:///system?socket=<path>`` reaches the real daemon through it, so cutting
    it is an unreachable hypervisor, seen exactly as a remote one that went away.
    """

    def __init__(self):
        self.path = f"/tmp/cc-libvirt-{uuid.uuid4().hex[:8]}.sock"
        self.mode = "open"  # open | refuse | stall
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.path}"

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.close()
                continue
            if self.mode == "stall":
                with self._lock:
                    self._conns.append(client)  # held open, never answered
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(LIBVIRT_SOCKET)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode == "refuse":
                    break
                while self.mode == "stall":
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self):
        """Refuse new connections and break the open ones: the hypervisor is gone."""
        self.mode = "refuse"
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self):
        self.mode = "open"

    def stall(self):
        self.mode = "stall"

    def close(self):
        self.cut()
        self._server.close()
        Path(self.path).unlink(missing_ok=True)


def worker_database_url() -> str:
    from tests.conftest import _worker_database_url

    return _worker_database_url()


def start_worker(*, visibility_timeout: int | None = None, name: str = "") -> subprocess.Popen:
    """A real Celery worker on the test database; returns once its heartbeat row appears."""
    from portal.models import WorkerHeartbeat

    name = name or f"cc-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": worker_database_url()}
    app = "portal"
    if visibility_timeout is not None:
        env["CC_TEST_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
        app = "tests.compute.celery_app"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "-Q",
            "default,hypervisor",
            "--pool",
            "threads",
            "-c",
            "4",
            "--loglevel",
            "WARNING",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not WorkerHeartbeat.objects.filter(hostname__startswith=name).exists():
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the Celery worker did not report within 60 s")
        time.sleep(0.2)
    return process


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def quiet_libvirt():
    """libvirt-python with its default error printer off (the tests read the exceptions)."""
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt


def dir_pool_with_golden(uri: str, name: str, directory: Path, golden: str, mib: int):
    """Open ``uri`` and make sure the directory pool ``name`` is defined, active and holds an empty
    qcow2 ``golden`` of ``mib`` MiB. Returns (connection, pool); fails the test when libvirtd is down."""
    libvirt = quiet_libvirt()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        pytest.fail(f"the real libvirtd is not running at {uri} (make test starts it): {exc}")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        xml = f"<pool type='dir'><name>{name}</name><target><path>{directory}</path></target></pool>"
        pool = conn.storagePoolDefineXML(xml, 0)
    if not pool.isActive():
        pool.create(0)
    if not (directory / golden).exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(directory / golden), f"{mib}M"], check=True)
    pool.refresh(0)
    return conn, pool

"""The libvirt connection behind a LibvirtDriver: opened on first use, reopened when it breaks, thread-safe."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import libvirt

from ..base import DriverError, ErrorCode, HostInfo
from .capacity import host_info as read_host_info
from .errors import map_error

T = TypeVar("T")

# libvirt prints every error to stderr by default; ours become DriverError instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def is_test_driver(conn: libvirt.virConnect) -> bool:
    """Whether this is libvirt's in-memory test driver, which lacks device hot-plug, nwfilter, upload, VNC."""
    return conn.getType().upper() == "TEST"


class Connection:
    """One libvirt URI and its connection; every driver call runs inside ``_calls`` or ``_run``."""

    def __init__(self, url: str, *, username: str = "", password: str = "") -> None:
        self.url = url
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None

    def _open(self) -> libvirt.virConnect:
        try:
            if not (self._username or self._password):
                return libvirt.open(self.url)

            def answer(creds: list, _data: Any) -> int:
                for cred in creds:
                    if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                        cred[4] = self._username
                    elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                        cred[4] = self._password
                return 0

            auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]
            return libvirt.openAuth(self.url, auth, 0)
        except libvirt.libvirtError as exc:
            err = map_error(exc, f"cannot connect to {self.url}")
            if err.code == ErrorCode.ERROR:
                # Failing to open is about reaching the daemon unless libvirt says otherwise.
                err = DriverError(err.message, permanent=False, code=ErrorCode.UNREACHABLE)
            raise err from exc

    def _connection(self) -> libvirt.virConnect:
        conn = self._conn
        if conn is not None and self._alive(conn):
            return conn
        with self._lock:
            # Another thread may have reopened it while we waited for the lock.
            if self._conn is not None and self._conn is not conn and self._alive(self._conn):
                return self._conn
            self._discard(self._conn)
            self._conn = self._open()
            return self._conn

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    @staticmethod
    def _discard(conn: libvirt.virConnect | None) -> None:
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _forget(self, conn: libvirt.virConnect) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        self._discard(conn)

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[libvirt.virConnect]:
        """Yield the connection; turn libvirt errors into DriverError, dropping a broken connection."""
        conn = self._connection()
        try:
            yield conn
        except libvirt.libvirtError as exc:
            err = map_error(exc, what)
            if err.code == ErrorCode.UNREACHABLE:
                self._forget(conn)
            raise err from exc

    def _run(self, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        with self._calls(what) as conn:
            return fn(conn)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        self._discard(conn)

    def check(self) -> None:
        self._run(f"cannot reach {self.url}", lambda conn: conn.getLibVersion())

    def host_info(self) -> HostInfo:
        return self._run("cannot read host capacity", read_host_info)

"""The vCenter session behind a VCenterDriver, the property collector, and waiting for tasks.

The session is opened on first use, reused by every call (and thread), and opened again
once when vCenter says it expired.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from ..base import DriverError, ErrorCode
from .errors import map_fault

T = TypeVar("T")
PC = vmodl.query.PropertyCollector


@dataclasses.dataclass(frozen=True)
class Settings:
    """An endpoint's vCenter options; the placement ones are defaults a VMSpec may override."""

    verify_ssl: bool = True
    ca_file: str = ""  # a CA bundle for a vCenter whose certificate a private CA signed
    datacenter: str = ""
    cluster: str = ""  # also what host_info() sums; empty: every host
    resource_pool: str = ""
    folder: str = ""
    datastore: str = ""
    task_timeout: float = 600.0
    connect_timeout: float = 15.0
    fast_inventory: bool = True  # list_vms parses the SOAP reply itself (see inventory.py)

    @classmethod
    def of(cls, options: dict[str, Any]) -> Settings:
        """The settings among ``options``; options of other drivers are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in options.items() if name in names})


class Session:
    """One vCenter (or ESXi) endpoint; every driver call runs through ``_call``."""

    def __init__(self, url: str, *, username: str = "", password: str = "", **options: Any) -> None:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DriverError(
                f"a vCenter URL looks like https://vcenter.example/sdk, not {url!r}",
                permanent=True,
                code=ErrorCode.INVALID_SPEC,
            )
        self.url = url
        self._protocol = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = parts.path or "/sdk"
        self._username = username
        self._password = password
        self._settings = Settings.of(options)
        self._lock = threading.Lock()
        self._si: Any = None

    def _connect(self) -> Any:
        kwargs: dict[str, Any] = {}
        if self._protocol == "https":
            if self._settings.verify_ssl:
                # An explicit context: pyVmomi skips verification for localhost when given none.
                kwargs["sslContext"] = ssl.create_default_context(cafile=self._settings.ca_file or None)
            else:
                kwargs["disableSslCertValidation"] = True
        try:
            return SmartConnect(
                protocol=self._protocol,
                host=self._host,
                port=self._port,
                path=self._path,
                user=self._username,
                pwd=self._password,
                httpConnectionTimeout=self._settings.connect_timeout,
                **kwargs,
            )
        except vim.fault.InvalidLogin as exc:
            raise DriverError(
                f"vCenter {self.url} refused the credentials of {self._username!r}",
                permanent=True,
                code=ErrorCode.AUTH,
            ) from exc
        except Exception as exc:
            err = map_fault(exc, f"cannot connect to {self.url}")
            if err.code == ErrorCode.ERROR:
                # SmartConnect says "is down or is not a VIM server" for both; a TCP probe tells which.
                listening = self._port_open()
                err = DriverError(
                    err.message,
                    permanent=listening,
                    code=ErrorCode.INVALID_SPEC if listening else ErrorCode.UNREACHABLE,
                )
            raise err from exc

    def _port_open(self) -> bool:
        try:
            socket.create_connection((self._host, self._port), timeout=self._settings.connect_timeout).close()
            return True
        except OSError:
            return False

    def _session(self, stale: Any = None) -> Any:
        with self._lock:
            if self._si is None or self._si is stale:
                self._si = self._connect()
            return self._si

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(si)``; log in again once if the session expired; map every error."""
        si = self._session()
        try:
            try:
                return fn(si)
            except vim.fault.NotAuthenticated:
                si = self._session(stale=si)
                return fn(si)
        except DriverError:
            raise
        except Exception as exc:
            err = map_fault(exc, what)
            if err.code == ErrorCode.UNREACHABLE:
                with self._lock:
                    if self._si is si:
                        self._si = None
            raise err from exc

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
        if si is not None:
            # Logging out of a dead session must not fail the caller.
            with contextlib.suppress(Exception):
                Disconnect(si)

    def check(self) -> None:
        self._call(f"cannot reach {self.url}", lambda si: si.CurrentTime())

    # ---- the property collector ----------------------------------------------------------

    @staticmethod
    def _view_spec(si: Any, types: list[type], props: dict[type, list[str]], root: Any = None) -> tuple[Any, Any]:
        content = si.content
        view = content.viewManager.CreateContainerView(root or content.rootFolder, types, True)
        traversal = PC.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[PC.PropertySpec(type=t, pathSet=paths) for t, paths in props.items()],
        )
        return view, spec

    def _retrieve(self, si: Any, types: list[type], props: dict[type, list[str]], root: Any = None) -> list:
        """[(obj, {prop: value})] for every object of ``types`` under ``root``, paging through tokens."""
        view, spec = self._view_spec(si, types, props, root)
        pc = si.content.propertyCollector
        try:
            result = pc.RetrievePropertiesEx([spec], PC.RetrieveOptions())
            rows = []
            while result is not None:
                rows.extend((o.obj, {p.name: p.val for p in o.propSet}) for o in result.objects)
                result = pc.ContinueRetrievePropertiesEx(result.token) if result.token else None
            return rows
        finally:
            view.DestroyView()

    @staticmethod
    def _props(si: Any, obj: Any, paths: list[str]) -> dict[str, Any]:
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
            propSet=[PC.PropertySpec(type=type(obj), pathSet=paths)],
        )
        result = si.content.propertyCollector.RetrieveContents([spec])
        return {p.name: p.val for o in result for p in o.propSet}

    def _devices(self, si: Any, ref: Any) -> list:
        return self._props(si, ref, ["config.hardware.device"]).get("config.hardware.device", [])

    def _find(self, si: Any, vimtype: type, name: str, what: str) -> Any:
        for obj, props in self._retrieve(si, [vimtype], {vimtype: ["name"]}):
            if props.get("name") == name:
                return obj
        raise DriverError(f"{what} {name!r} not found", permanent=True, code=ErrorCode.NOT_FOUND)

    # ---- tasks ---------------------------------------------------------------------------

    def _wait(self, si: Any, task: Any, what: str, *, result: bool = False) -> Any:
        """Wait for a task. Only info.state/error are read (and info.result when asked), since
        vcsim answers some tasks with a result type pyVmomi cannot deserialize."""
        deadline = time.monotonic() + self._settings.task_timeout
        delay = 0.05
        paths = ["info.state", "info.error"] + (["info.result"] if result else [])
        while True:
            info = self._props(si, task, paths)
            state = info.get("info.state")
            if state == vim.TaskInfo.State.success:
                return info.get("info.result")
            if state == vim.TaskInfo.State.error:
                fault = info.get("info.error")
                if not isinstance(fault, BaseException):  # a LocalizedMethodFault left wrapped
                    fault = getattr(fault, "fault", None) or RuntimeError(
                        getattr(fault, "localizedMessage", "task failed")
                    )
                raise map_fault(fault, what)
            if time.monotonic() > deadline:
                raise DriverError(
                    f"{what}: task still {state} after {self._settings.task_timeout:.0f} s",
                    permanent=False,
                    code=ErrorCode.TIMEOUT,
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

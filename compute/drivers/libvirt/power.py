"""Power operations on a domain, and the address of its VNC console."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import libvirt

from ..base import ConsoleAddress, DriverError, ErrorCode, PowerState, unsupported
from . import objects as lo
from .connection import Connection, is_test_driver
from .inventory import vm_info


class Power(Connection):
    def _domain_call(
        self, name: str, what: str, allowed: set[PowerState], fn: Callable[[libvirt.virDomain], Any]
    ) -> None:
        """Run a power operation; a VM in the wrong state is INVALID_STATE whatever libvirt's wording."""
        with self._calls(f"cannot {what} VM {name!r}") as conn:
            dom = lo.domain(conn, name)
            state = lo.power_state(dom)
            if state not in allowed:
                raise DriverError(
                    f"cannot {what} VM {name!r}: it is {state}", permanent=True, code=ErrorCode.INVALID_STATE
                )
            fn(dom)

    def start(self, name: str) -> None:
        self._domain_call(name, "start", {PowerState.STOPPED}, lambda dom: dom.create())

    def shutdown(self, name: str, *, force: bool = False) -> None:
        """Ask the guest to power off (returns at once; poll get_vm), or pull the plug with force."""
        self._domain_call(
            name,
            "stop",
            {PowerState.RUNNING, PowerState.PAUSED},
            lambda dom: dom.destroy() if force else dom.shutdown(),
        )

    def reboot(self, name: str) -> None:
        self._domain_call(name, "reboot", {PowerState.RUNNING}, lambda dom: dom.reboot(0))

    def suspend(self, name: str) -> None:
        self._domain_call(name, "suspend", {PowerState.RUNNING}, lambda dom: dom.suspend())

    def resume(self, name: str) -> None:
        self._domain_call(name, "resume", {PowerState.PAUSED}, lambda dom: dom.resume())

    def console_address(self, name: str) -> ConsoleAddress:
        with self._calls(f"cannot read the console of VM {name!r}") as conn:
            if is_test_driver(conn):
                raise unsupported("a VNC console", "libvirt's test driver")
            info = vm_info(conn, lo.domain(conn, name))
            if info.power_state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise DriverError(f"VM {name!r} is not running", permanent=True, code=ErrorCode.INVALID_STATE)
            if info.vnc_port is None:
                raise DriverError(f"VM {name!r} has no VNC display", permanent=True, code=ErrorCode.CONSOLE_UNSUPPORTED)
            return ConsoleAddress(host=info.vnc_host, port=info.vnc_port)

    def console_password_set(self, name: str, password: str, valid_until: datetime) -> None:
        """Give the running VM's VNC display a one-time password, valid until ``valid_until`` (libvirt's
        ``passwd`` and ``passwdValidTo``, changed live): QEMU then asks every VNC client for it."""
        with self._calls(f"cannot set the console password of VM {name!r}") as conn:
            if is_test_driver(conn):
                raise unsupported("a VNC console", "libvirt's test driver")
            dom = lo.domain(conn, name)
            graphics = ET.fromstring(dom.XMLDesc(0)).find("devices/graphics[@type='vnc']")
            if graphics is None:
                raise DriverError(f"VM {name!r} has no VNC display", permanent=True, code=ErrorCode.CONSOLE_UNSUPPORTED)
            graphics.set("passwd", password)
            graphics.set("passwdValidTo", valid_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
            dom.updateDeviceFlags(ET.tostring(graphics, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)

"""Power operations on a VM, and a WebMKS console ticket."""

from __future__ import annotations

from typing import Any

from pyVmomi import vmodl

from ..base import ConsoleAddress, DriverError, ErrorCode
from .inventory import Inventory


class Power(Inventory):
    def _power(self, name: str, what: str, method: str) -> None:
        def run(si: Any) -> None:
            ref = self._vm_ref(si, name)
            self._wait(si, getattr(ref, method)(), f"cannot {what} VM {name!r}")

        self._call(f"cannot {what} VM {name!r}", run)

    def start(self, name: str) -> None:
        self._power(name, "start", "PowerOnVM_Task")

    def shutdown(self, name: str, *, force: bool = False) -> None:
        """Guest shutdown through VMware Tools (returns at once; poll get_vm), or power off with force."""
        if force:
            self._power(name, "power off", "PowerOffVM_Task")
            return
        self._call(f"cannot shut down VM {name!r}", lambda si: self._vm_ref(si, name).ShutdownGuest())

    def reboot(self, name: str) -> None:
        """A hard reset: unlike a guest reboot it needs no VMware Tools in the guest."""
        self._power(name, "reset", "ResetVM_Task")

    def suspend(self, name: str) -> None:
        self._power(name, "suspend", "SuspendVM_Task")

    def resume(self, name: str) -> None:
        self._power(name, "resume", "PowerOnVM_Task")

    def console_address(self, name: str) -> ConsoleAddress:
        def ticket(si: Any) -> ConsoleAddress:
            ref = self._vm_ref(si, name)
            try:
                t = ref.AcquireTicket(ticketType="webmks")
            except (vmodl.fault.NotSupported, vmodl.fault.NotImplemented, vmodl.fault.MethodNotFound) as exc:
                # vcsim implements no tickets at all (MethodNotFound); old ESXi lacks webmks.
                raise DriverError(
                    f"vCenter {self.url} cannot issue a WebMKS console ticket for VM {name!r}",
                    permanent=True,
                    code=ErrorCode.CONSOLE_UNSUPPORTED,
                ) from exc
            host, port = t.host or self._host, t.port or 443
            return ConsoleAddress(host=host, port=port, ticket=t.ticket, url=f"wss://{host}:{port}/ticket/{t.ticket}")

        return self._call(f"cannot open a console on VM {name!r}", ticket)

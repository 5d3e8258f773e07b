"""Power control of a host through its BMC over IPMI (pyghmi): HA's fencing. No Django here.

Each call runs pyghmi in a child process with a hard time limit: pyghmi keeps a process-wide I/O
thread and a cache of sessions, which a forked Celery worker must not inherit, and an unanswering
BMC must not hold the HA round longer than ``timeout``. The password goes to the child on stdin,
never on its command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from .base import DriverError, ErrorCode


@dataclass(frozen=True)
class BmcAccess:
    address: str
    port: int
    username: str
    password: str


def _run(access: BmcAccess, op: str, timeout: float) -> str:
    request = json.dumps({"op": op, **access.__dict__})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "compute.drivers.ipmi"],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise DriverError(
            f"BMC {access.address}:{access.port} did not answer within {timeout:.0f} s",
            permanent=False,
            code=ErrorCode.TIMEOUT,
        ) from exc
    lines = done.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-500:] or "no answer"}
    if "error" in answer:
        auth = "password" in answer["error"].lower() or "unauthorized" in answer["error"].lower()
        raise DriverError(
            f"BMC {access.address}:{access.port}: {answer['error']}",
            permanent=auth,
            code=ErrorCode.AUTH if auth else ErrorCode.UNREACHABLE,
        )
    return answer["power"]


def power_state(access: BmcAccess, *, timeout: float = 10.0) -> str:
    """The chassis power state the BMC reports: "on" or "off"."""
    return _run(access, "state", timeout)


def power_off(access: BmcAccess, *, timeout: float = 10.0) -> str:
    """Hard power-off (no guest shutdown), then the power state read back ("off" when it worked)."""
    return _run(access, "off", timeout)


def _child() -> None:
    """In the child process: one IPMI operation, one JSON line on stdout."""
    from pyghmi import exceptions
    from pyghmi.ipmi import command

    request = json.loads(sys.stdin.read())
    try:
        ipmi = command.Command(
            bmc=request["address"], userid=request["username"], password=request["password"], port=request["port"]
        )
        if request["op"] == "off":
            ipmi.set_power("off", wait=5)
        power = ipmi.get_power()["powerstate"]
        print(json.dumps({"power": power}))
    except (exceptions.PyghmiException, OSError, KeyError) as exc:
        print(json.dumps({"error": str(exc) or type(exc).__name__}))


if __name__ == "__main__":
    _child()

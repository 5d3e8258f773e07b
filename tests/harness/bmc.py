"""An IPMI BMC simulator for a testbed host, built on pyghmi's BMC server: HA fences through it.

One process per host (``python -m tests.harness.bmc``), listening on a UDP port of this machine.
Power-off kills every process of the host (``scripts/testbed.sh kill``, as ``host.lose()``), and the
chassis power state it reports is what happened to the host: "off" after a power-off, "on" after a
power-on (which brings the host back with ``scripts/testbed.sh up``). ``--refuse-off`` makes a BMC
that answers but will not cut the power (the "fencing failed" case). Tests take one with
``bmc_for(host)``; it ends with the test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.harness.processes import ROOT, stop_process

SCRIPT = ROOT / "scripts" / "testbed.sh"
USER, PASSWORD = "admin", "bmc-secret"


@dataclass(frozen=True)
class Bmc:
    host: str
    address: str
    port: int
    username: str
    password: str
    process: subprocess.Popen


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def bmc_for(host, *, refuse_off: bool = False) -> Iterator[Bmc]:
    """A BMC simulator for a testbed host (tests/harness/testbed.Host) on 127.0.0.1, until the block ends."""
    port = free_udp_port()
    argv = [sys.executable, "-m", "tests.harness.bmc", "--host", host.name, "--port", str(port)]
    if refuse_off:
        argv.append("--refuse-off")
    env = {**os.environ, **host.config, "BMC_PASSWORD": PASSWORD}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        ready = process.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError(f"the BMC simulator of {host.name} did not start: {ready!r}")
        yield Bmc(host.name, "127.0.0.1", port, USER, PASSWORD, process)
    finally:
        stop_process(process, timeout=5)


def _sha1_only() -> None:
    """pyghmi's server answers every RMCP+ open request with cipher suite 3 (HMAC-SHA1), while its client
    asks for SHA-256 first and believes the answer: refuse that request (code 0x11, "invalid authentication
    algorithm"), as a SHA-1-only BMC does, so the client falls back to SHA-1."""
    from pyghmi.ipmi.private import serversession

    original = serversession.ServerSession.create_open_session_response

    def respond(self, request):
        if len(request) > 12 and request[12] != 1:
            self.clientsessionid = request[4:8]
            return bytearray([request[0], 0x11, 0, 0]) + request[4:8] + bytearray(4)
        return original(self, request)

    serversession.ServerSession.create_open_session_response = respond


def _server_class():
    from pyghmi.ipmi import bmc

    _sha1_only()

    class HostBmc(bmc.Bmc):
        """The chassis of one testbed host: powering it off kills the host's processes."""

        def __init__(self, authdata, *, host: str, refuse_off: bool, port: int):
            super().__init__(authdata, port=port, address="127.0.0.1")
            self.host = host
            self.refuse_off = refuse_off
            self.powered = True

        def _script(self, *args: str) -> None:
            subprocess.run([str(SCRIPT), *args], capture_output=True, timeout=120, check=False)

        def get_power_state(self):
            return "on" if self.powered else "off"

        def power_off(self):
            if self.refuse_off:
                return 0xD5  # "cannot execute command": the BMC answers but the power stays on
            self._script("kill", self.host)
            self.powered = False
            log(f"power off {self.host}")
            return 0

        def power_on(self):
            self._script("up")
            self.powered = True
            log(f"power on {self.host}")
            return 0

        def power_reset(self):
            self.power_off()
            return self.power_on()

        def is_active(self):
            return self.powered

    return HostBmc


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--refuse-off", action="store_true")
    args = parser.parse_args()
    server = _server_class()(
        {USER: os.environ.get("BMC_PASSWORD", PASSWORD)}, host=args.host, refuse_off=args.refuse_off, port=args.port
    )
    print("ready", json.dumps({"host": args.host, "port": args.port}), flush=True)
    server.listen(timeout=30)


if __name__ == "__main__":
    main()

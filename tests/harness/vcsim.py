"""The vCenter simulator (tools/vcsim, built from Debian's govmomi sources by ``scripts/vcsim.sh``).

Tests start private instances on free ports (``Vcsim``), so they never depend on what another
test did to the shared instance that ``make test`` runs (``VCSIM_URL``). ``VCSIM_BIN`` points at
another simulator binary.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.harness.processes import ROOT, stop_process

if TYPE_CHECKING:
    from compute.drivers.vcenter import VCenterDriver


def vcsim_binary() -> Path:
    override = os.environ.get("VCSIM_BIN")
    if override:
        return Path(override)
    # Builds only when main.go changed since the last build.
    subprocess.run([str(ROOT / "scripts" / "vcsim.sh"), "build"], check=True, timeout=300)
    return ROOT / "tools" / "vcsim" / "bin" / "vcsim"


class Vcsim:
    """A private simulator process; ``url`` is its SDK URL."""

    def __init__(self, *args: str):
        self.args = args
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(vcsim_binary()), "-l", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        # The URL is printed once it serves; a simulator that hangs must not hang the suite.
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"vcsim {' '.join(args)} did not start")
        self.url = line
        self.start_seconds = time.monotonic() - started

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def driver(self, username: str = "user", password: str = "pass", **options: object) -> VCenterDriver:
        from compute.drivers.vcenter import VCenterDriver

        return VCenterDriver(self.url, username=username, password=password, **options)

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)


@pytest.fixture(scope="module")
def vcsim() -> Iterator[Vcsim]:
    """A private simulator for the test module: 4 VMs (DC0_C0_RP0_VM0..3, powered on) and the
    template "template-linux"."""
    sim = Vcsim("-vm", "4")
    yield sim
    sim.stop()

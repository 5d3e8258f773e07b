"""Helpers other test packages may import too: where libvirtd is, and a private vCenter simulator."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

from compute.drivers.vcenter import VCenterDriver

ROOT = Path(__file__).resolve().parents[3]
QEMU_URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")


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
        return VCenterDriver(self.url, username=username, password=password, **options)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

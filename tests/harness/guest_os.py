"""The tiny guest OS of the testbed desktops: Debian's cloud kernel plus a busybox initramfs built here.

``guest_build()`` returns (kernel, initrd) paths on this machine, built once per kernel version and
init script under ``.run/guest/``. No download: the kernel and busybox are Debian packages that
``scripts/setup.sh test`` installs (linux-image-cloud-amd64, busybox-static).

What the guest does (its /init, a busybox shell script, is PID 1):
- loads the virtio PCI/net modules, the ACPI power button (a graceful shutdown powers it off),
- takes eth0's address by DHCP (udhcpc, default route via the router the server names; it keeps
  renewing) and prints, on its console (the kernel's ``console=ttyS0``)::

      CCGUEST ip=10.0.0.5 mac=52:54:00:12:34:56 gw=10.0.0.1 mask=24 hostname=cc-xyz

  again after each new lease; ``CCGUEST dhcp leasefail`` each time a round of DHCP requests got no
  answer (about every 12 s while nobody answers),
- answers ping (the kernel) and HTTP on port 80 (``cc.port=N`` changes it): ``/`` answers
  ``<hostname> <ip>``, ``/cgi-bin/ping?<ip>`` pings that address once from the guest, answers
  ``<ip> ok|fail`` and prints ``CCGUEST ping <ip> ok|fail`` on the console,
- pings every address of ``cc.ping=a,b,...`` (kernel command line) every 2 s and prints
  ``CCGUEST ping <ip> ok|fail`` whenever the answer changes (the first answer included).
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".run" / "guest"
BUSYBOX = Path("/bin/busybox")
MODULES = ("virtio_pci", "virtio_net", "button", "evdev")
MARK = "CCGUEST"

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /run /tmp /www/cgi-bin
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
for m in $(cat /etc/modules); do insmod "/lib/modules/$m" 2>/dev/null; done
ip link set lo up
port=80
peers=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    cc.port=*) port="${arg#cc.port=}" ;;
    cc.ping=*) peers="$(echo "${arg#cc.ping=}" | tr ',' ' ')" ;;
  esac
done
# The power button (libvirt's graceful shutdown): any event of that input device powers off.
for dev in /sys/class/input/event*; do
  if grep -q "Power Button" "$dev/device/name" 2>/dev/null; then
    (head -c 1 "/dev/input/${dev##*/}" >/dev/null && echo "MARK shutdown" && sync && poweroff -f) &
  fi
done
ip link set eth0 up
udhcpc -i eth0 -s /etc/udhcpc.script -t 5 -T 2 -A 2 >/dev/null 2>&1 &
while [ ! -s /run/ip ]; do sleep 0.2; done
httpd -p "$port" -h /www
echo "MARK up port=$port"
for p in $peers; do echo unknown > "/run/ping-$p"; done
while :; do
  for p in $peers; do
    if ping -c 1 -W 1 "$p" >/dev/null 2>&1; then r=ok; else r=fail; fi
    if [ "$(cat "/run/ping-$p")" != "$r" ]; then echo "$r" > "/run/ping-$p"; echo "MARK ping $p $r"; fi
  done
  sleep 2
done
"""

UDHCPC = r"""#!/bin/sh
# udhcpc's hook: configure eth0 from the lease and say so on the console.
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ;;
  leasefail|nak)
    echo "MARK dhcp $1" > /dev/console
    ;;
  bound|renew)
    old="$(cat /run/ip 2>/dev/null)"
    if [ "$old" != "$ip/$mask" ]; then
      ip addr flush dev "$interface"
      ip addr add "$ip/$mask" dev "$interface"
    fi
    gw="${router%% *}"
    [ -n "$gw" ] && ip route replace default via "$gw" dev "$interface"
    [ -n "$hostname" ] && hostname "$hostname"
    mac="$(cat /sys/class/net/$interface/address)"
    echo "$(hostname) $ip" > /www/index.html
    if [ "$old" != "$ip/$mask" ] || [ "$1" = bound ]; then
      echo "MARK ip=$ip mac=$mac gw=$gw mask=$mask hostname=$(hostname)" > /dev/console
    fi
    echo "$ip/$mask" > /run/ip
    ;;
esac
exit 0
"""

PING_CGI = r"""#!/bin/sh
# /cgi-bin/ping?<ip>: one ping from the guest, answered and printed on the console.
p="$QUERY_STRING"
case "$p" in *[!0-9.]*|"") printf 'Status: 400\r\nContent-Type: text/plain\r\n\r\nbad address\n'; exit 0 ;; esac
if ping -c 1 -W 2 "$p" >/dev/null 2>&1; then r=ok; else r=fail; fi
echo "MARK ping $p $r" > /dev/console
printf 'Content-Type: text/plain\r\n\r\n%s %s\n' "$p" "$r"
"""


def kernel_version() -> str:
    """The newest installed Debian cloud kernel, e.g. ``6.1.0-57-cloud-amd64``."""
    kernels = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"), key=os.path.getmtime)
    if not kernels:
        raise FileNotFoundError("no /boot/vmlinuz-*-cloud-amd64: `scripts/setup.sh test` installs it")
    return kernels[-1].removeprefix("/boot/vmlinuz-")


def _module_files(version: str) -> list[str]:
    """The .ko paths (relative to /lib/modules/<version>) of MODULES and their dependencies, in load order."""
    base = Path("/lib/modules") / version
    deps: dict[str, list[str]] = {}
    for line in (base / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    by_name = {re.sub(r"\.ko(\.\w+)?$", "", Path(p).name).replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps[path]:
            visit(dep)
        order.append(path)

    for name in MODULES:
        if name not in by_name:
            raise FileNotFoundError(f"module {name} not in {base}/modules.dep")
        visit(by_name[name])
    return order


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".ko.xz") else data


class _Cpio:
    """A cpio archive in the "newc" format the kernel unpacks as its initramfs."""

    def __init__(self):
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self.ino += 1
        self.out.write(b"070701" + b"".join(b"%08X" % value for value in fields) + encoded)
        self.out.write(b"\0" * (-self.out.tell() % 4))
        self.out.write(data)
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def close(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self.out.write(b"\0" * (-self.out.tell() % 512))
        return self.out.getvalue()


def _initramfs(version: str) -> bytes:
    modules = _module_files(version)
    archive = _Cpio()
    for directory in ("bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "run", "tmp", "www", "www/cgi-bin"):
        archive.directory(directory)
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    archive.file("init", INIT.replace("MARK", MARK).encode(), 0o755)
    archive.file("etc/udhcpc.script", UDHCPC.replace("MARK", MARK).encode(), 0o755)
    archive.file("www/cgi-bin/ping", PING_CGI.replace("MARK", MARK).encode(), 0o755)
    archive.file("www/index.html", b"booting\n")
    names = []
    for path in modules:
        name = Path(path).name.removesuffix(".xz")
        archive.file(f"lib/modules/{name}", _module_bytes(Path("/lib/modules") / version / path))
        names.append(name)
    archive.file("etc/modules", "\n".join(names).encode() + b"\n")
    return gzip.compress(archive.close(), mtime=0)


def _key(version: str) -> str:
    digest = hashlib.sha256()
    for part in (INIT, UDHCPC, PING_CGI, MARK, ",".join(MODULES)):
        digest.update(part.encode())
    digest.update(BUSYBOX.read_bytes())
    return f"{version}-{digest.hexdigest()[:12]}"


def guest_build(cache: Path = CACHE) -> tuple[Path, Path]:
    """(kernel, initrd) of the guest on this machine; built on the first call, then reused."""
    version = kernel_version()
    directory = cache / _key(version)
    kernel, initrd = directory / "vmlinuz", directory / "initrd.gz"
    if initrd.exists():
        return kernel, initrd
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist: one process builds, the others wait
        if not initrd.exists():
            partial = cache / f".{directory.name}.{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            shutil.copyfile(f"/boot/vmlinuz-{version}", partial / "vmlinuz")
            (partial / "initrd.gz").write_bytes(_initramfs(version))
            partial.rename(directory)
    return kernel, initrd

"""The console of a desktop on a remote host: console ticket → first RFB byte through the portal's proxy.

Usage: .venv/bin/python bench/console.py [--tickets 20]   (root: it uses the multi-host testbed)

A running domain on testbed host h3 (site west, its own libvirtd over qemu+tcp, VNC on its management
address with a password) is a student's desktop in the bench's own database (bench/env.py). For each of
N tickets, timed from the request to the first byte: ``POST /api/v1/desktops/{id}/console/`` on the portal
under uvicorn (the ticket sets a one-time VNC password on the domain over libvirt), then the WebSocket to
the proxy, which connects to h3's management address and authenticates to QEMU, until the browser's side
receives "RFB 003.008". The testbed is reused when it is up, else brought up and taken down (bench/bed.py).
Target (issue 16): p95 ≤ 1 s.
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bed, common  # noqa: E402

TARGET_SECONDS = 1.0


def _domain_on(host) -> str:
    from tests.testbed.hosts import domain_xml

    name = f"cc-bench-console-{uuid.uuid4().hex[:6]}"
    conn = host.connect()
    try:
        conn.defineXML(domain_xml(name)).create()
    finally:
        conn.close()
    return name


def _remove_domain(host, name: str) -> None:
    import libvirt

    conn = host.connect()
    try:
        dom = conn.lookupByName(name)
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        dom.undefine()
    finally:
        conn.close()


def _desktop(host, vm_name: str):
    """h3 as a compute node and the domain as a running desktop of a student; returns (desktop, token)."""
    from bench.rows import token_for
    from compute import services
    from compute.models import Desktop, Host
    from tenants.models import Membership, Tenant, User
    from tenants.roles import TenantRole

    services.host_add(
        actor=None,
        name=host.name,
        uri=host.uri,
        site=host.site,
        cluster=f"{host.site}-general",
        domain_type="qemu",
        storage_pool="",
    )
    row = Host.objects.select_related("endpoint").get(name=host.name)
    tenant = Tenant.objects.create(slug="bench", name_zh="基准测试", path="/bench/")
    student = User.objects.create(username="bench_student", display_name="基准学生")
    Membership.objects.create(user=student, tenant=tenant, role=TenantRole.STUDENT)
    desktop = Desktop.objects.create(
        name="console",
        vm_name=vm_name,
        tenant=tenant,
        owner=student,
        endpoint=row.endpoint,
        host=row,
        state=Desktop.State.RUNNING,
        power_state="running",
    )
    return desktop, token_for(student)


def _ws_open(port: int, path: str) -> tuple[socket.socket, bytes]:
    """A browser's WebSocket handshake on a plain socket; returns it and whatever followed the 101 answer.

    (websockify's client keeps bytes that came with the 101 in a buffer its recv() does not look at until
    more arrive: the proxy's first RFB bytes then wait for uvicorn's 20-s ping, which is not the portal's time.)
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n"
            f"Origin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit(f"the proxy closed the WebSocket handshake: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"the proxy refused the WebSocket: {head[:200]!r}")
    return sock, rest


def _payload(sock: socket.socket, data: bytes, size: int) -> bytes:
    """The payload of the server's (unmasked) binary frames until ``size`` bytes."""
    payload = b""
    while len(payload) < size:
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            chunk = sock.recv(4096)
            if not chunk:
                return payload
            data += chunk
        length = data[1] & 0x7F  # the RFB greeting is a short frame (< 126 bytes)
        if data[0] & 0x0F == 0x2:
            payload += data[2 : 2 + length]
        data = data[2 + length :]
    return payload


def _first_rfb_byte(port: int, desktop_id: int, token: str) -> float:
    """Seconds from the ticket request to the first RFB bytes on the browser's side of the proxy."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", f"/api/v1/desktops/{desktop_id}/console/", headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 201:
        raise SystemExit(f"console ticket refused: {response.status} {body[:300]!r}")
    sock, rest = _ws_open(port, json.loads(body)["websocket_url"])
    try:
        greeting = _payload(sock, rest, 12)
        elapsed = time.monotonic() - started
    finally:
        with contextlib.suppress(OSError):
            sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # a masked close frame, empty
        sock.close()
    if greeting != b"RFB 003.008\n":
        raise SystemExit(f"no RFB greeting through the proxy: {greeting!r}")
    return elapsed


def run(tickets: int) -> dict:
    common.django_on("console")
    with bed.testbed() as testbed:
        host = testbed["h3"]
        vm_name = _domain_on(host)
        server = None
        try:
            desktop, token = _desktop(host, vm_name)
            port = common.free_port()
            server = common.uvicorn(port, env=dict(os.environ), workers=1)
            _first_rfb_byte(port, desktop.pk, token)  # warm-up: the first request opens the libvirt connection
            times = sorted(_first_rfb_byte(port, desktop.pk, token) for _ in range(tickets))
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            _remove_domain(host, vm_name)
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {"host": host.name, "address": host.address, "tickets": tickets, "p50": p50, "p95": p95, "max": times[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20)
    args = parser.parse_args()
    result = run(args.tickets)
    print(f"console of a desktop on testbed host {result['host']} ({result['address']}), {result['tickets']} tickets")
    print(
        f"  ticket -> first RFB byte: p50 {result['p50']:.3f} s, p95 {result['p95']:.3f} s, max {result['max']:.3f} s"
    )
    verdict = "OK" if result["p95"] <= TARGET_SECONDS else "OVER"
    print(f"  target p95 <= {TARGET_SECONDS:.1f} s: {verdict}")
    common.print_load()
    return 0


if __name__ == "__main__":
    sys.exit(main())

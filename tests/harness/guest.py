"""Testbed desktops that run a real tiny OS (tests/harness/guest_os.py): fixtures and log readers.

A pytest plugin that tests/conftest.py loads. For tests under tests/testbed/ (marks: libvirt,
testbed; ``@pytest.mark.django_db(transaction=True)`` when real tasks run on commit).

- ``guest_boot`` (session): the guest's kernel and initrd copied to the testbed's shared storage;
  ``.kernel`` / ``.initrd`` are their paths inside the hosts, ``.cmdline`` the base command line.
- ``guest_env``: every testbed host registered as a compute node unless the test did (``host_add``,
  cluster ``<site>-general``, TCG) with a desktop pool in a directory of its own on the shared
  storage (two test files may run at once; ``guest_env_made`` builds one for a fixture of another
  name) and an empty golden qcow2; an image that boots the guest (``.image``), a version of it per
  site (``.versions["east"]``, ``.version_for("h3")``), a 1 vCPU / 128 MiB flavor (``.flavor``; the
  cloud kernel needs more than 64 MiB). The endpoints' libvirt networks, bridges and filters carry a
  name prefix of this test (``.prefix``), so test processes sharing the testbed never meet. At
  teardown: this test's domains, networks, filters, pool and files go. ``guest_env.image_with(actor,
  "cc.ping=10.0.0.7")`` makes another image with more kernel arguments (same versions' volumes): a
  desktop of it pings those peers.
- ``guest_env.open_port(actor, tenant, 80)``: the tenant's default security group lets in SSH, RDP
  and ping only; this adds TCP 80 (the guest's HTTP) for ``guest_http``/``guest_ping``.
- ``guest_env.desktop_on("h1", actor=..., tenant=..., owner=..., versions=None)``: a desktop of
  the guest image on that host (``desktop_create(endpoint=...)``), running when it returns under
  ``eager`` (with a real worker: still provisioning, wait for it).
- ``guest_env.free_cidr()``: a /24 that no testbed host routes yet (for ``network_create``).
- ``guest_log(desktop)``: what the desktop's guest printed on its serial console since its last
  start, read on the host that runs it (``desktop.host``).
- ``wait_for_guest(desktop, pattern, timeout=120)``: the regex match once ``pattern`` appears in
  that log (AssertionError with the log's tail otherwise).
- ``guest_address(desktop)``: waits for the guest's DHCP line; ``{"ip", "mac", "gw", "mask",
  "hostname"}`` as the guest saw them.
- ``host_ping(host, ip)``: one ping from inside a testbed host; True when answered.
- ``guest_http(desktop, path="/")``: GET from the guest's port 80, from the host the desktop runs on
  (which needs an address on the desktop's subnet); ``/`` answers ``<hostname> <ip>``.
- ``guest_ping(desktop, peer_ip)``: asks the guest (through ``guest_http``) to ping ``peer_ip`` once;
  True when answered.

What the guest prints (``CCGUEST ip=... mac=... gw=... mask=... hostname=...``, ``CCGUEST up
port=80``, ``CCGUEST ping <ip> ok|fail``) is described in guest_os.py. Boot under TCG: about 10 s to
its address (docs/testbed.md, "Guest OS").
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import random
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import pytest

from tests.harness.guest_os import MARK, guest_build
from tests.harness.testbed import Testbed, describe

BASE_CMDLINE = "console=ttyS0 quiet panic=-1"
GUEST_MIB = 128
ADDRESS = re.compile(
    rf"{MARK} ip=(?P<ip>\S+) mac=(?P<mac>\S+) gw=(?P<gw>\S*) mask=(?P<mask>\S+) hostname=(?P<hostname>\S*)"
)


@dataclass(frozen=True)
class GuestBoot:
    kernel: str  # paths inside the testbed hosts (the shared storage)
    initrd: str
    cmdline: str = BASE_CMDLINE


@pytest.fixture(scope="session")
def guest_boot(testbed) -> GuestBoot:
    kernel, initrd = guest_build()
    directory = testbed.shared_dir / f"guest-{kernel.parent.name}"
    if not (directory / initrd.name).exists():
        partial = testbed.shared_dir / f".{directory.name}.{uuid.uuid4().hex[:6]}"
        partial.mkdir()
        shutil.copyfile(kernel, partial / kernel.name)
        shutil.copyfile(initrd, partial / initrd.name)
        with contextlib.suppress(OSError):  # another test process was first: its copy is the same
            partial.rename(directory)
        shutil.rmtree(partial, ignore_errors=True)
    inside = f"{testbed.shared_path}/{directory.name}"
    return GuestBoot(kernel=f"{inside}/{kernel.name}", initrd=f"{inside}/{initrd.name}")


@functools.cache
def _bed() -> Testbed:
    return describe()


def _host_of(desktop, testbed: Testbed | None = None):
    desktop.refresh_from_db()
    if desktop.host_id is None:
        raise AssertionError(f"desktop {desktop.pk} runs on no host ({desktop.state}, {desktop.error_reason!r})")
    return (testbed or _bed())[desktop.host.name]


def guest_log(desktop, testbed: Testbed | None = None) -> str:
    """The desktop's serial console since its last start, on the host that runs it ("" before it starts)."""
    from compute.drivers.xml import serial_log_path

    host = _host_of(desktop, testbed)
    result = host.run("cat", serial_log_path(desktop.vm_name), check=False)
    return result.stdout if result.returncode == 0 else ""


def wait_for_guest(desktop, pattern: str, *, timeout: float = 120, testbed: Testbed | None = None) -> re.Match:
    """The first match of ``pattern`` in the desktop's serial console, once it is there."""
    import time

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = guest_log(desktop, testbed)
        match = re.search(pattern, text)
        if match:
            return match
        time.sleep(0.5)
    tail = "\n".join(text.splitlines()[-15:])
    raise AssertionError(f"no {pattern!r} on desktop {desktop.pk}'s console after {timeout:.0f} s; it ends:\n{tail}")


def guest_address(desktop, *, timeout: float = 120, testbed: Testbed | None = None) -> dict[str, str]:
    """What the guest took by DHCP, from its console line."""
    return wait_for_guest(desktop, ADDRESS.pattern, timeout=timeout, testbed=testbed).groupdict()


def host_ping(host, ip: str, *, timeout: int = 5) -> bool:
    """One ping from inside a testbed host (busybox's: this machine may have no ping of its own)."""
    return host.run("busybox", "ping", "-c", "1", "-W", str(timeout), ip, check=False).returncode == 0


_GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"


def guest_http(desktop, path: str = "/", *, testbed: Testbed | None = None) -> str:
    """GET ``path`` from the guest's port 80, from inside the host that runs it ("" when it fails)."""
    host = _host_of(desktop, testbed)
    result = host.run(sys.executable, "-c", _GET, f"http://{desktop.guest_ip}{path}", check=False, timeout=30)
    return result.stdout if result.returncode == 0 else ""


def guest_ping(desktop, peer_ip: str, *, testbed: Testbed | None = None) -> bool:
    """The guest pings ``peer_ip`` once, asked over HTTP from the host that runs it."""
    return guest_http(desktop, f"/cgi-bin/ping?{peer_ip}", testbed=testbed).split() == [peer_ip, "ok"]


@dataclass
class GuestEnv:
    testbed: Testbed
    boot: GuestBoot
    prefix: str
    pool: str
    golden: str
    image: object
    versions: dict[str, object]
    flavor: object
    hosts: dict[str, object] = field(default_factory=dict)  # testbed host name -> compute.models.Host

    def version_for(self, host_name: str):
        return self.versions[self.testbed[host_name].site]

    def desktop_on(self, host_name: str, *, actor, tenant, owner=None, name: str = "", versions=None):
        """A desktop of the guest image (or of ``versions``, from ``image_with``) placed on that host
        through ``desktop_create``; with eager tasks it is running when this returns (asserted)."""
        from compute import services
        from compute.models import Desktop

        site = self.testbed[host_name].site
        name = name or f"guest-{host_name}"
        services.desktop_create(
            actor=actor,
            tenant=tenant,
            image_version=(versions or self.versions)[site],
            flavor=self.flavor,
            owner=owner or actor,
            name=name,
            endpoint=self.hosts[host_name].endpoint,
        )
        desktop = Desktop.objects.filter(tenant=tenant, name=name).latest("pk")
        if desktop.state == Desktop.State.PROVISIONING:
            return desktop  # a real worker runs the task: the caller waits (tests.harness.waiting.wait_state)
        assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
        assert desktop.host.name == host_name
        return desktop

    def image_with(self, actor, extra_cmdline: str, *, name: str = ""):
        """Another guest image whose kernel command line adds ``extra_cmdline``; a version per site
        on the same golden volume. Returns {site: version}."""
        from compute import services

        image = services.image_create(
            actor=actor,
            name=name or f"guest {extra_cmdline}"[:100],
            os_type="linux",
            kernel_path=self.boot.kernel,
            initrd_path=self.boot.initrd,
            kernel_cmdline=f"{self.boot.cmdline} {extra_cmdline}",
        )
        return _versions(actor, image, self)

    def open_port(self, actor, tenant, port: int = 80):
        """Let TCP ``port`` into the tenant's desktops (a rule of its default security group, which
        lets in only SSH, RDP and ping): the guest's HTTP is port 80."""
        from network import services as network_services

        group = network_services.security_group_default_ensure(tenant=tenant)
        return network_services.rule_add(
            actor=actor,
            group=group,
            direction="in",
            protocol="tcp",
            port_min=port,
            port_max=port,
            remote_cidr="0.0.0.0/0",
        )

    def free_cidr(self) -> str:
        """A 10.24x.N.0/24 that no testbed host routes (libvirt refuses a NAT subnet already routed)."""
        routed = []
        for host in self.testbed:
            for line in host.run("ip", "-4", "route").stdout.splitlines():
                with contextlib.suppress(ValueError):
                    routed.append(ipaddress.IPv4Network(line.split()[0], strict=False))
        while True:
            cidr = ipaddress.IPv4Network(f"10.{random.randint(240, 249)}.{random.randint(0, 255)}.0/24")
            if not any(cidr.overlaps(net) for net in routed):
                return str(cidr)


def _versions(actor, image, env: GuestEnv) -> dict[str, object]:
    from compute import services
    from compute.models import Host

    versions = {}
    for host in env.testbed:
        if host.site not in versions:
            versions[host.site] = services.image_version_register(
                actor=actor,
                image=image,
                endpoint=Host.objects.get(name=host.name).endpoint,
                pool=env.pool,
                volume=env.golden,
                size_bytes=64 * 1024**2,
            )
    return versions


def _sweep(env: GuestEnv) -> None:
    from compute.hypervisor import drivers_close_all
    from compute.models import Desktop
    from tests.harness.hostnet import libvirt_sweep

    drivers_close_all()
    ours = set(Desktop.objects.values_list("vm_name", flat=True))
    for host in env.testbed:
        conn = host.connect()
        try:
            for dom in conn.listAllDomains(0):
                if dom.name() in ours:
                    with contextlib.suppress(Exception):
                        dom.destroy()
                    with contextlib.suppress(Exception):
                        dom.undefine()
            with contextlib.suppress(Exception):
                conn.storagePoolLookupByName(env.pool).destroy()
        finally:
            conn.close()
        libvirt_sweep(host.uri, env.prefix)


@contextlib.contextmanager
def guest_env_made(testbed, guest_boot, scenario, *, letter: str = "g", name: str = "CampusCloud guest"):
    """A GuestEnv (what ``guest_env`` gives), its storage pool in a directory of its own on the shared
    storage: libvirt refuses two pools on one target path, and test files run in parallel."""
    from compute import services
    from compute.models import Endpoint, Host
    from tests.testbed.hosts import add_host

    uid = uuid.uuid4().hex[:5]
    prefix = f"{letter}{uid}"
    env = GuestEnv(
        testbed=testbed,
        boot=guest_boot,
        prefix=prefix,
        pool=f"{prefix}-pool",
        golden=f"{prefix}-golden.qcow2",
        image=None,
        versions={},
        flavor=None,
    )
    area = testbed.shared_area(prefix)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(area.dir / env.golden), "64M"], check=True)
    try:
        for host in testbed:
            conn = host.connect()
            try:
                conn.storagePoolCreateXML(area.pool_xml(env.pool), 0)
            finally:
                conn.close()
            if not Host.objects.filter(name=host.name).exists():  # the test may have added it itself
                add_host(host, shared_storage_pool=env.pool)
        for endpoint in Endpoint.objects.filter(hosts__name__in=[h.name for h in testbed]):
            endpoint.options = {
                **endpoint.options,
                "network_prefix": f"{prefix}-n",
                "bridge_prefix": f"{prefix}b",
                "filter_prefix": f"{prefix}-sg",
                "firewall_prefix": prefix,
            }
            endpoint.save(update_fields=["options"])
        env.hosts = {host.name: Host.objects.get(name=host.name) for host in testbed}
        env.image = services.image_create(
            actor=scenario.sysadmin,
            name=name,
            os_type="linux",
            kernel_path=guest_boot.kernel,
            initrd_path=guest_boot.initrd,
            kernel_cmdline=guest_boot.cmdline,
        )
        env.versions = _versions(scenario.sysadmin, env.image, env)
        env.flavor = services.flavor_create(
            actor=scenario.sysadmin, name=f"guest-{uid}", vcpus=1, memory_mib=GUEST_MIB, disk_gib=1
        )
        yield env
    finally:
        _sweep(env)
        area.remove()


@pytest.fixture
def guest_env(testbed, guest_boot, scenario) -> GuestEnv:
    with guest_env_made(testbed, guest_boot, scenario) as env:
        yield env

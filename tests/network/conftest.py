"""Fixtures of the network tests: a tenant network, a unique name prefix per run, threads on their own connections."""

import contextlib
import uuid

import pytest
from django.db import connection

from network import services

RUN = uuid.uuid4().hex[:4]


@pytest.fixture
def run_id() -> str:
    """A short id unique to this test: libvirt names and bridges made by the test carry it."""
    return f"{RUN}{uuid.uuid4().hex[:2]}"


def tenant_network(scenario, *, cidr="10.231.1.0/24", name="lab", tenant=None, **kwargs):
    return services.network_create(
        actor=scenario.sysadmin, tenant=tenant or scenario.tenant_a, name=name, cidr=cidr, **kwargs
    )


def in_threads(fn, count: int) -> list:
    """Run ``fn(i)`` in ``count`` threads at once, each on its own database connection; results or exceptions."""
    import threading

    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - collected and asserted by the caller
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


@pytest.fixture(autouse=True)
def _fresh_drivers():
    from compute.hypervisor import drivers_close_all

    drivers_close_all()
    yield
    drivers_close_all()


def prefixed(prefix: str) -> dict:
    """Endpoint options that put ``prefix`` on its libvirt networks, bridges, filters and firewall chains."""
    return {
        "network_prefix": f"{prefix}-n",
        "bridge_prefix": f"{prefix}b",
        "filter_prefix": f"{prefix}-sg",
        "firewall_prefix": prefix,
    }


def endpoint_make(scenario, *, name: str, url: str = "test:///default", prefix: str = "", site=None):
    """An endpoint whose libvirt networks, bridges and filters carry ``prefix`` (so that two
    endpoints on one daemon, standing for two hosts, do not share them)."""
    from compute import services as compute_services

    options = prefixed(prefix) if prefix else {}
    return compute_services.endpoint_register(
        actor=scenario.sysadmin, name=name, kind="libvirt", url=url, domain_type="qemu", options=options, site=site
    )


def desktop_row(tenant, endpoint, *, owner=None, state="running", vm_name=""):
    from compute.models import Desktop

    return Desktop.objects.create(
        name=f"desk-{uuid.uuid4().hex[:6]}",
        vm_name=vm_name or f"cn-{uuid.uuid4().hex[:10]}",
        tenant=tenant,
        owner=owner,
        endpoint=endpoint,
        state=state,
        power_state="running" if state == "running" else "stopped",
    )


# --- the real libvirtd ----------------------------------------------------------------------------


def free_cidr() -> str:
    """A 10.231.N.0/24 no route on this machine uses yet (libvirt refuses a subnet already routed)."""
    import random
    import subprocess

    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    candidates = [n for n in range(100, 250) if f"10.231.{n}.0/24" not in routes]
    return f"10.231.{random.choice(candidates)}.0/24"


def libvirt_sweep(uri: str, prefix: str) -> None:
    """Remove every domain, network and nwfilter whose name starts with ``prefix``."""
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(prefix):
                try:
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
                except libvirt.libvirtError:
                    pass
        for net in conn.listAllNetworks(0):
            if net.name().startswith(prefix):
                try:
                    if net.isActive():
                        net.destroy()
                    if net.isPersistent():
                        net.undefine()
                except libvirt.libvirtError:
                    pass
        for flt in conn.listAllNWFilters(0):
            if flt.name().startswith(prefix):
                with contextlib.suppress(libvirt.libvirtError):
                    flt.undefine()
    finally:
        conn.close()


@pytest.fixture
def qemu_prefix():
    """A name prefix for this test's libvirt objects on the real daemon; all of them go afterwards."""
    import os

    prefix = f"cn{RUN}{uuid.uuid4().hex[:3]}"
    uri = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")
    try:
        yield prefix
    finally:
        from compute.hypervisor import drivers_close_all

        drivers_close_all()
        libvirt_sweep(uri, prefix)
        firewall_sweep(prefix)


def firewall_chains() -> str:
    """Both tables of the host firewall, as ``iptables -S`` prints them."""
    import subprocess

    return "".join(
        subprocess.run(["iptables", "-w", "5", "-t", table, "-S"], capture_output=True, text=True, check=True).stdout
        for table in ("nat", "filter")
    )


def firewall_sweep(prefix: str) -> None:
    """Remove the host-firewall chains (and their jumps) of every firewall prefix starting with ``prefix``."""
    from compute.drivers.hostfw import HostFirewall

    names = {line.split()[1] for line in firewall_chains().splitlines() if line.startswith(f"-N {prefix}")}
    for owner in sorted({name.rsplit("-", 1)[0] for name in names}):
        HostFirewall(owner).teardown()


def network_xml(uri: str, name: str) -> str:
    import libvirt

    conn = libvirt.open(uri)
    try:
        return conn.networkLookupByName(name).XMLDesc(0)
    finally:
        conn.close()


def dnsmasq_hosts(name: str) -> str:
    from pathlib import Path

    path = Path(f"/var/lib/libvirt/dnsmasq/{name}.hostsfile")
    return path.read_text() if path.exists() else ""

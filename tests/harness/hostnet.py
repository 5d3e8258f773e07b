"""The network side of the real libvirtd and of this host: libvirt networks and nwfilters, dnsmasq's
hosts files and the host firewall (iptables) that the network tests create and read back.

Every object a test makes carries the test's own name prefix (``qemu_prefix``), so runs sharing
the daemon and the firewall never meet, and all of them go afterwards, even after a failure.
"""

import contextlib
import random
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.harness.qemu import QEMU_URI, quiet_libvirt

RUN = uuid.uuid4().hex[:4]


@pytest.fixture
def qemu_prefix():
    """A name prefix for this test's libvirt objects and firewall chains; all of them go afterwards."""
    prefix = f"cn{RUN}{uuid.uuid4().hex[:3]}"
    try:
        yield prefix
    finally:
        from compute.hypervisor import drivers_close_all

        drivers_close_all()
        libvirt_sweep(QEMU_URI, prefix)
        firewall_sweep(prefix)


def free_cidr() -> str:
    """A 10.231.N.0/24 no route on this machine uses yet (libvirt refuses a subnet already routed)."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    candidates = [n for n in range(100, 250) if f"10.231.{n}.0/24" not in routes]
    return f"10.231.{random.choice(candidates)}.0/24"  # noqa: S311 - a free subnet, not a secret


def libvirt_sweep(uri: str, prefix: str) -> None:
    """Remove every domain, network and nwfilter whose name starts with ``prefix``."""
    libvirt = quiet_libvirt()
    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(prefix):
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        for net in conn.listAllNetworks(0):
            if net.name().startswith(prefix):
                with contextlib.suppress(libvirt.libvirtError):
                    if net.isActive():
                        net.destroy()
                    if net.isPersistent():
                        net.undefine()
        for flt in conn.listAllNWFilters(0):
            if flt.name().startswith(prefix):
                with contextlib.suppress(libvirt.libvirtError):
                    flt.undefine()
    finally:
        conn.close()


def network_xml(uri: str, name: str) -> str:
    conn = quiet_libvirt().open(uri)
    try:
        return conn.networkLookupByName(name).XMLDesc(0)
    finally:
        conn.close()


def dnsmasq_hosts(name: str) -> str:
    path = Path(f"/var/lib/libvirt/dnsmasq/{name}.hostsfile")
    return path.read_text() if path.exists() else ""


def firewall_chains() -> str:
    """Both tables of the host firewall, as ``iptables -S`` prints them."""
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

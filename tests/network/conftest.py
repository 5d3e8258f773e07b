"""Fixtures of the network tests: a tenant network, a unique name prefix per run, threads on their own
connections. The real libvirtd's networks and the host firewall are tests/harness/hostnet.py's."""

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


def tenant_pool(scenario, *, cidr="10.231.0.0/16", tenant=None, name="", min_prefixlen=16):
    """An address pool of the platform assigned to the tenant (default: tenant A), so its admins may
    carve subnets from it."""
    return services.address_pool_create(
        actor=scenario.sysadmin,
        name=name or f"pool-{uuid.uuid4().hex[:6]}",
        cidr=cidr,
        min_prefixlen=min_prefixlen,
        tenant=tenant or scenario.tenant_a,
    )

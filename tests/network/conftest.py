"""Fixtures of the network tests: a tenant network, a unique name prefix per run, threads on their own connections."""

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

"""An elastic IP bound to a desktop's NIC is an address the desktop holds: billing meters it by the hour.

The binding service tells compute inside its transaction (network.hooks → compute locks the
desktop → compute.hooks.desktop_changed → billing), so a binding that rolls back meters nothing.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction

from billing import services as billing
from billing.metering import US_PER_HOUR, ips_of
from billing.models import MeterCursor, UsageInterval
from compute import hooks as compute_hooks
from compute import networking
from compute.selectors import desktop_elastic_ip_count
from network import services
from network.models import PublicPool
from tests.network.conftest import desktop_row, endpoint_make, tenant_network

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _ip_hours(desktop) -> float:
    pieces = UsageInterval.objects.filter(desktop_id=desktop.pk)
    return sum(p.ips * p.duration_us for p in pieces) / US_PER_HOUR


@pytest.fixture
def bound(scenario, run_id):
    """A running desktop with its NIC on a tenant network, metered since T0 - 1h, and an elastic IP."""
    tenant_network(scenario)
    endpoint = endpoint_make(scenario, name=f"m-{run_id}", prefix=f"m{run_id}")
    desktop = desktop_row(scenario.tenant_a, endpoint, owner=scenario.student)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    with time_machine.travel(T0 - timedelta(hours=1), tick=False), transaction.atomic():
        compute_hooks.desktop_changed(desktop=desktop, reason="provisioned")
    pool = PublicPool.objects.create(name="campus", cidr="198.51.100.0/29")
    eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    return desktop, address, eip


def test_an_elastic_ip_bound_for_two_hours_meters_two_extra_ip_hours(scenario, bound):
    desktop, address, eip = bound
    assert MeterCursor.objects.get(pk=desktop.pk).ips == 1

    with time_machine.travel(T0, tick=False):
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    assert MeterCursor.objects.get(pk=desktop.pk).ips == 2
    assert desktop_elastic_ip_count(desktop) == 1 and ips_of(desktop) == 2
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=None)
    assert MeterCursor.objects.get(pk=desktop.pk).ips == 1
    billing.usage_close_until(until=T0 + timedelta(hours=3))

    bound_piece = UsageInterval.objects.get(desktop_id=desktop.pk, start=T0)
    assert (bound_piece.ips, bound_piece.end) == (2, T0 + timedelta(hours=2))
    # Four hours with the NIC's own address, two of them with the elastic IP too.
    assert _ip_hours(desktop) == 4 + 2


def test_moving_an_elastic_ip_to_another_desktop_moves_the_metering(scenario, bound):
    desktop, address, eip = bound
    other = desktop_row(scenario.tenant_a, desktop.endpoint, owner=scenario.student2)
    (other_nic,) = networking.desktop_nics_allocate(desktop=other)
    with time_machine.travel(T0, tick=False):
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=None)
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=other_nic)
    assert MeterCursor.objects.get(pk=desktop.pk).ips == 1
    cursor = MeterCursor.objects.get(pk=other.pk)
    assert (cursor.ips, cursor.since) == (2, T0 + timedelta(hours=1))


def test_a_binding_that_rolls_back_meters_nothing(scenario, bound):
    desktop, address, eip = bound
    with pytest.raises(RuntimeError), time_machine.travel(T0, tick=False), transaction.atomic():
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
        raise RuntimeError("the caller's transaction fails after the binding")
    assert MeterCursor.objects.get(pk=desktop.pk).ips == 1
    assert not UsageInterval.objects.filter(desktop_id=desktop.pk).exists()
    eip.refresh_from_db()
    assert eip.address_id is None

"""An elastic IP is an address its tenant holds from its allocation to its release, bound or not:
billing meters it by the hour on its own (network.hooks "elastic_ip_held", in the allocating and
the releasing transaction), and a desktop never counts it, so binding it changes no meter.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction

from billing import services as billing
from billing.metering import US_PER_HOUR, ips_of
from billing.models import ElasticIPMeterCursor, MeterCursor, UsageInterval
from common.errors import Conflict
from compute import hooks as compute_hooks
from compute import networking
from network import services
from network.models import ElasticIP, PublicPool
from tests.network.conftest import desktop_row, endpoint_make, tenant_network

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _ip_hours(**holder) -> float:
    pieces = UsageInterval.objects.filter(**holder)
    return sum(p.ips * p.duration_us for p in pieces) / US_PER_HOUR


@pytest.fixture
def pool():
    return PublicPool.objects.create(name="campus", cidr="198.51.100.0/29")


@pytest.fixture
def desktop_nic(scenario, run_id):
    """A running desktop with its NIC on a tenant network, metered since T0 - 1h."""
    tenant_network(scenario)
    endpoint = endpoint_make(scenario, name=f"m-{run_id}", prefix=f"m{run_id}")
    desktop = desktop_row(scenario.tenant_a, endpoint, owner=scenario.student)
    (address,) = networking.desktop_nics_allocate(desktop=desktop)
    with time_machine.travel(T0 - timedelta(hours=1), tick=False), transaction.atomic():
        compute_hooks.desktop_changed(desktop=desktop, reason="provisioned")
    return desktop, address


def test_an_unbound_elastic_ip_is_metered_from_its_allocation_to_its_release(scenario, pool):
    with time_machine.travel(T0, tick=False):
        eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    cursor = ElasticIPMeterCursor.objects.get(pk=eip.pk)
    assert (cursor.since, cursor.ips, cursor.tenant_id, cursor.user_id) == (T0, 1, scenario.tenant_a.pk, None)

    with time_machine.travel(T0 + timedelta(hours=3), tick=False):
        services.elastic_ip_release(actor=scenario.tenant_admin, eip=eip)

    assert not ElasticIPMeterCursor.objects.exists()
    # The released row is gone; its pieces stay with the tenant (and no desktop or volume).
    pieces = UsageInterval.objects.filter(tenant=scenario.tenant_a)
    assert [(p.start, p.end, p.ips, p.desktop_id, p.volume_id) for p in pieces] == [
        (T0, T0 + timedelta(hours=3), 1, None, None)
    ]


def test_binding_an_elastic_ip_changes_no_meter_and_it_is_counted_once(scenario, pool, desktop_nic):
    desktop, address = desktop_nic
    with time_machine.travel(T0, tick=False):
        eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    assert ips_of(desktop) == 1  # its NIC only: the elastic IP is metered by itself
    assert MeterCursor.objects.get(pk=desktop.pk).ips == 1
    assert ElasticIPMeterCursor.objects.get(pk=eip.pk).since == T0
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=None)
    billing.usage_close_until(until=T0 + timedelta(hours=3))

    # Four hours of the NIC's address; three of the elastic IP, one of them bound.
    assert _ip_hours(desktop_id=desktop.pk) == 4
    assert _ip_hours(elastic_ip_id=eip.pk) == 3


def test_an_elastic_ip_left_bound_to_a_deleted_desktop_is_still_metered(scenario, pool, desktop_nic):
    desktop, address = desktop_nic
    with time_machine.travel(T0, tick=False):
        eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False), transaction.atomic():
        desktop.state = "deleted"
        desktop.save(update_fields=["state"])
        compute_hooks.desktop_changed(desktop=desktop, reason="deleted")
    billing.usage_close_until(until=T0 + timedelta(hours=2))

    assert not MeterCursor.objects.filter(pk=desktop.pk).exists()
    assert _ip_hours(elastic_ip_id=eip.pk) == 2


def test_an_allocation_that_rolls_back_meters_nothing(scenario, pool):
    with pytest.raises(RuntimeError), time_machine.travel(T0, tick=False), transaction.atomic():
        services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
        raise RuntimeError("the caller's transaction fails after the allocation")
    assert not ElasticIP.objects.exists()
    assert not ElasticIPMeterCursor.objects.exists()


def test_a_release_refused_while_bound_leaves_the_meter_open(scenario, pool, desktop_nic):
    _, address = desktop_nic
    with time_machine.travel(T0, tick=False):
        eip = services.elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool)
        services.elastic_ip_associate(actor=scenario.tenant_admin, eip=eip, address=address)
    with pytest.raises(Conflict) as refused:
        services.elastic_ip_release(actor=scenario.tenant_admin, eip=eip)
    assert refused.value.code == "eip_in_use"
    assert ElasticIPMeterCursor.objects.get(pk=eip.pk).since == T0
    assert not UsageInterval.objects.filter(elastic_ip_id=eip.pk).exists()

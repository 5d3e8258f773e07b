"""billing 0006 on rows written before it: every elastic IP starts its own meter at the migration, and a
desktop whose open interval counted a bound elastic IP is cut there and goes on without it."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from network.models import Address, ElasticIP, Network, PublicPool, Subnet
from tests.billing.conftest import desktop_row
from tests.harness.migrations import database_of_its_own, migrate
from tests.scenario import scenario_build

BEFORE = [("billing", "0005_detached_volumes_metered")]
AFTER = [("billing", "0006_elastic_ips_metered")]
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def own_database(django_db_blocker):
    """A database of the test's own at the latest state with the scenario's rows (tests/harness/migrations.py):
    ``scenario``, asked for after it, reads them there; the test takes billing back and forward on it."""
    with database_of_its_own(django_db_blocker, latest=True) as name, django_db_blocker.unblock():
        scenario_build()
        yield name


@pytest.mark.django_db(transaction=True)
def test_elastic_ips_get_their_own_meter_and_leave_the_desktops_meter(own_database, scenario):
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, state="running", power="running")
    subnet = Subnet.objects.create(
        network=Network.objects.create(tenant=scenario.tenant_a, name="mig-net"),
        cidr="10.9.0.0/24",
        gateway="10.9.0.1",
        dhcp_start="10.9.0.10",
        dhcp_end="10.9.0.200",
    )
    nic = Address.objects.create(
        subnet=subnet, tenant=scenario.tenant_a, ip="10.9.0.10", mac="52:54:00:00:09:10", desktop_id=desktop.pk
    )
    pool = PublicPool.objects.create(name="mig-campus", cidr="198.51.100.0/29")
    bound = ElasticIP.objects.create(pool=pool, tenant=scenario.tenant_a, ip="198.51.100.2", address=nic)
    unbound = ElasticIP.objects.create(pool=pool, tenant=scenario.tenant_a, ip="198.51.100.3")
    # Opened two days ago, before a local midnight, with the NIC and the bound elastic IP.
    since = datetime.combine(timezone.localdate() - timedelta(days=2), datetime.min.time(), SHANGHAI).replace(hour=22)
    old = migrate(BEFORE)
    old.get_model("billing", "MeterCursor").objects.create(
        desktop_id=desktop.pk, tenant_id=scenario.tenant_a.pk, user_id=scenario.student.pk, since=since, ips=2
    )

    before = timezone.now()
    new = migrate(AFTER)
    after = timezone.now()

    cursor = new.get_model("billing", "MeterCursor").objects.get(pk=desktop.pk)
    assert cursor.ips == 1 and before <= cursor.since <= after
    pieces = list(new.get_model("billing", "UsageInterval").objects.filter(desktop_id=desktop.pk).order_by("start"))
    assert pieces[0].start == since and pieces[-1].end == cursor.since
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert {p.ips for p in pieces} == {2} and len(pieces) >= 3  # cut at each local midnight
    assert sum(p.duration_us for p in pieces) == int((cursor.since - since).total_seconds() * 1_000_000)
    eip_cursors = new.get_model("billing", "ElasticIPMeterCursor").objects.order_by("pk")
    assert [(c.elastic_ip_id, c.ips, c.tenant_id, c.since) for c in eip_cursors] == [
        (bound.pk, 1, scenario.tenant_a.pk, cursor.since),
        (unbound.pk, 1, scenario.tenant_a.pk, cursor.since),
    ]

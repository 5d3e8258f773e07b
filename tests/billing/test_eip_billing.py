"""Issue #13.8: the invoice, the usage page and the quota page agree on IP addresses. Each desktop NIC's
address and every elastic IP, bound or not, is one "IP 地址" in the quota and one IP·小时 an hour on
the usage page and the invoice."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from billing import services as billing
from billing.models import ElasticIPMeterCursor, Invoice, Item, MeterCursor
from compute import services
from network.models import Address, Network, PublicPool, Subnet
from network.services import elastic_ip_allocate, elastic_ip_associate
from tenants.models import Quota
from tenants.services import quota_set
from tests.billing.conftest import plan
from tests.compute.conftest import make_env

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The last hour of November: November's invoice holds exactly one hour of what is held from here.
T0 = datetime(2026, 11, 30, 23, 0, tzinfo=SHANGHAI)
NOVEMBER = date(2026, 11, 1)


@pytest.fixture
def env(scenario):
    from compute.hypervisor import drivers_close_all

    drivers_close_all()
    yield make_env(scenario)
    drivers_close_all()


@pytest.fixture
def held_for_an_hour(scenario, env, eager, django_capture_on_commit_callbacks):
    """From T0: two desktops with a NIC each, an elastic IP bound to one of them, another unbound."""
    plan(scenario.sysadmin, scenario.university, date(2020, 1, 1), ip="0.5")
    network = Network.objects.create(tenant=scenario.tenant_a, name="cs-lab")
    Subnet.objects.create(
        network=network, cidr="10.9.0.0/24", gateway="10.9.0.1", dhcp_start="10.9.0.10", dhcp_end="10.9.0.200"
    )
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"ips": 10})
    pool = PublicPool.objects.create(name="campus", cidr="198.51.100.0/29")
    with time_machine.travel(T0, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            desktops = [
                services.desktop_create(
                    actor=scenario.student, tenant=scenario.tenant_a, image_version=env.version, flavor=env.flavor
                )
                for _ in range(2)
            ]
        bound, unbound = (
            elastic_ip_allocate(actor=scenario.tenant_admin, tenant=scenario.tenant_a, pool=pool) for _ in range(2)
        )
        with django_capture_on_commit_callbacks(execute=True):
            elastic_ip_associate(
                actor=scenario.tenant_admin, eip=bound, address=Address.objects.get(desktop_id=desktops[0].pk)
            )
    return desktops, bound, unbound


def test_two_desktops_a_bound_and_an_unbound_elastic_ip_are_four_ips_everywhere(scenario, held_for_an_hour, settings):
    settings.SECOND_FACTOR_REQUIRED = False  # finance's second factor is tested in tests/audit
    desktops, bound, unbound = held_for_an_hour
    assert [MeterCursor.objects.get(pk=d.pk).ips for d in desktops] == [1, 1]
    assert [ElasticIPMeterCursor.objects.get(pk=e.pk).ips for e in (bound, unbound)] == [1, 1]

    quota = Quota.objects.get(scope="tenant", tenant=scenario.tenant_a)
    assert (quota.used_ips, quota.reserved_ips) == (4, 0)
    client = Client()
    client.force_login(scenario.tenant_admin)
    page = client.get("/tenants/quotas/").content.decode()
    assert 'data-testid="quota-ips">已用 4 · 预留 0 · 上限 10（可用 6）' in page

    client.force_login(scenario.finance)
    response = client.get("/billing/usage/", {"start": "2026-11-30", "end": "2026-11-30", "group_by": "item"})
    assert response.status_code == 200
    usage = response.content.decode()
    assert '<td>IP 地址</td><td class="text-end">4.0000</td><td>IP·小时</td>' in usage

    result = billing.invoices_issue(month=NOVEMBER, tenants=[scenario.tenant_a])
    assert len(result.issued) == 1
    invoice = Invoice.objects.get(tenant=scenario.tenant_a, month=NOVEMBER)
    ip_lines = [line for line in invoice.lines.all() if line.item == Item.IP]
    assert sum(line.quantity for line in ip_lines) == Decimal(4)
    assert {str(line.unit) for line in ip_lines} == {"IP·小时"}
    detail = client.get(f"/billing/invoices/{invoice.pk}/").content.decode()
    assert "IP·小时" in detail

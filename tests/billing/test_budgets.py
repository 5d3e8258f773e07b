"""Budgets: notices at 80% and 100% (once each), and the optional block on new desktops through compute's hook."""

from datetime import date, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from billing import metering, services
from billing.errors import BillingError
from billing.models import BudgetAlert
from common.errors import Conflict
from compute import hooks
from tests.billing.conftest import desktop_row, plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def spending(scenario, course):
    """A CS101 desktop running since this month began, at 1 yuan per vCPU-hour (2 vCPUs)."""
    plan(scenario.sysadmin, scenario.university, date(2020, 1, 1), vcpu="1")
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running")
    month_start = metering.local_midnight(timezone.localdate().replace(day=1))
    services.desktop_usage_record(desktop=desktop, at=month_start)
    scenario.finance.email = "finance@example.edu"
    scenario.finance.save()
    return month_start


def test_budget_notices_go_out_once_at_80_and_100_percent(scenario, spending, django_capture_on_commit_callbacks):
    now = spending + timedelta(hours=10)  # 20 yuan spent
    services.budget_set(actor=scenario.finance, tenant=scenario.tenant_a, amount="24")

    with django_capture_on_commit_callbacks(execute=True):
        first = services.budgets_check(now=now)
        again = services.budgets_check(now=now)
        later = services.budgets_check(now=now + timedelta(hours=2))  # 24 yuan: 100%

    assert [a.threshold for a in first] == [80] and again == [] and [a.threshold for a in later] == [100]
    assert BudgetAlert.objects.count() == 2
    assert len(mail.outbox) == 2 and mail.outbox[0].to == ["finance@example.edu"]
    assert "80%" in mail.outbox[0].subject
    assert AuditEvent.objects.filter(action="budget.threshold").count() == 2


def test_a_blocking_budget_past_100_percent_refuses_new_desktops_through_compute_hook(scenario, spending, course):
    services.budget_set(
        actor=scenario.finance, tenant=scenario.tenant_a, course=course, amount="0.01", block_new_desktops=True
    )

    with pytest.raises(Conflict) as err:
        hooks.desktop_create_check(tenant=scenario.tenant_a, course=course)
    assert err.value.code == BillingError.BUDGET_EXHAUSTED
    hooks.desktop_create_check(tenant=scenario.tenant_b, course=None)  # another tenant is not blocked


def test_a_notify_only_budget_does_not_block(scenario, spending):
    services.budget_set(actor=scenario.finance, tenant=scenario.university, amount="0.01")
    hooks.desktop_create_check(tenant=scenario.tenant_a, course=None)


def test_a_parent_tenants_blocking_budget_covers_its_children(scenario, spending):
    services.budget_set(actor=scenario.sysadmin, tenant=scenario.university, amount="0.01", block_new_desktops=True)
    with pytest.raises(Conflict):
        hooks.desktop_create_check(tenant=scenario.tenant_a, course=None)

"""The running estimate is kept ESTIMATE_SECONDS per month and set of tenants (billing.selectors.estimate_for):
readers of the same bills share it, nobody is given another set's, and it is priced again once it expires."""

import time
from datetime import date, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing import selectors, services
from tests.billing.conftest import course_of, desktop_row, plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(scenario):
    """A desktop of each college running since an hour ago, at the university's rates."""
    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="0.05", disk="0.0003")
    since = timezone.now() - timedelta(hours=1)
    for tenant, teacher, owner in [
        (scenario.tenant_a, scenario.teacher, scenario.student),
        (scenario.tenant_b, scenario.stranger_admin, scenario.stranger),
    ]:
        course = course_of(tenant, teacher, code=f"E{tenant.pk}")
        desktop = desktop_row(tenant, owner=owner, course=course, state="running", power="running")
        services.desktop_usage_record(desktop=desktop, at=since)


@pytest.fixture
def pricings(monkeypatch):
    """How many times the month was priced."""
    calls = []
    real = selectors.month_drafts

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(selectors, "month_drafts", counted)
    return calls


def _tenants(drafts) -> set[str]:
    return {draft.tenant.slug for draft in drafts}


def test_readers_of_the_same_bills_share_one_pricing(scenario, running, pricings):
    finance = selectors.estimate_for(scenario.finance)
    admin = selectors.estimate_for(scenario.tenant_admin)  # reads the college's bills too

    assert _tenants(finance) == _tenants(admin) == {"cs"}
    assert [d.total for d in finance] == [d.total for d in admin] and finance[0].total > 0
    assert len(pricings) == 1


def test_nobody_is_given_another_set_of_tenants_estimate(scenario, running, pricings):
    selectors.estimate_for(scenario.finance)

    assert _tenants(selectors.estimate_for(scenario.stranger_admin)) == {"me"}
    assert _tenants(selectors.estimate_for(scenario.sysadmin)) == {"cs", "me"}
    assert selectors.estimate_for(scenario.student) == []
    assert len(pricings) == 3


def test_an_expired_estimate_is_priced_again_with_what_was_used_since(scenario, running, pricings, monkeypatch):
    monkeypatch.setattr(selectors, "ESTIMATE_SECONDS", 1)
    [before] = selectors.estimate_for(scenario.finance)
    time.sleep(1.2)

    [after] = selectors.estimate_for(scenario.finance)

    assert len(pricings) == 2
    assert after.total >= before.total


def test_an_estimate_at_a_given_instant_is_never_kept(scenario, running, pricings):
    now = timezone.now()
    selectors.estimate_for(scenario.finance, now=now)
    selectors.estimate_for(scenario.finance, now=now)

    assert len(pricings) == 2


def test_the_usage_page_says_how_often_the_estimate_is_updated(scenario, running, settings):
    settings.SECOND_FACTOR_REQUIRED = False  # the second factor is tested in tests/audit
    reader = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    reader.force_login(scenario.finance)
    page = reader.get("/billing/usage/").content.decode()

    assert f"预估每 {selectors.ESTIMATE_SECONDS} 秒更新一次" in page

"""Objects of tenant `cs` for tests/api/test_isolation.py: a user of `me` must get a 404 on each."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


def _invoice(scenario):
    from billing import services
    from tests.billing.conftest import desktop_row

    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, state="stopped", power="stopped")
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 1, tzinfo=ZoneInfo("Asia/Shanghai")))
    start = datetime.now(ZoneInfo("Asia/Shanghai")).replace(day=1) - timedelta(days=1)
    invoice = services.invoice_issue(actor=None, tenant=scenario.tenant_a, month=start.date().replace(day=1))
    return {"id": invoice.pk}


def _plan(scenario):
    from tests.billing.conftest import plan

    return {"id": plan(scenario.sysadmin, scenario.tenant_a, date(2026, 10, 1), vcpu="0.1").pk}


MAKERS = {
    "/api/v1/invoices/{id}/": _invoice,
    "/api/v1/invoices/{id}/pdf/": _invoice,
    "/api/v1/invoices/{id}/csv/": _invoice,
    "/api/v1/invoices/{id}/xlsx/": _invoice,
    "/api/v1/invoices/{id}/credit-notes/": _invoice,
    "/api/v1/price-plans/{id}/": _plan,
}

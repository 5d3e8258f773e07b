"""Issuers racing on MariaDB: invoice numbers stay unique and gapless, and a month is invoiced once."""

import threading
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import close_old_connections, connection

from billing import services
from billing.models import Invoice
from tests.billing.conftest import desktop_row


def _race(workers):
    errors = []

    def run(fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(fn,)) for fn in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_issuers_take_gapless_unique_numbers_and_invoice_a_month_once(scenario):
    for tenant, owner in ((scenario.tenant_a, scenario.student), (scenario.tenant_b, scenario.stranger)):
        desktop = desktop_row(tenant, owner=owner, state="stopped", power="stopped")
        services.desktop_usage_record(desktop=desktop, at=datetime(2026, 7, 1, tzinfo=ZoneInfo("Asia/Shanghai")))
    months = ["2026-07", "2026-08", "2026-09", "2026-10"]

    # Each month twice, all at once: 8 issuers for 8 invoices (2 tenants x 4 months).
    _race([lambda m=m: services.invoices_issue(month=m) for m in months * 2])

    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    assert numbers == [f"INV-{year}-{n:06d}" for n in range(1, 9)]
    assert Invoice.objects.filter(month=date(2026, 7, 1)).count() == 2


@pytest.mark.django_db(transaction=True)
def test_state_changes_racing_the_interval_sweep_neither_deadlock_nor_lose_time(scenario):
    from django.db import transaction
    from django.utils import timezone

    from billing.models import UsageInterval
    from compute.models import Desktop

    desktops = [
        desktop_row(scenario.tenant_a, owner=scenario.student, state="stopped", power="stopped") for _ in range(6)
    ]
    started = timezone.now()
    for desktop in desktops:
        services.desktop_usage_record(desktop=desktop, at=started)

    def toggler(pk):
        def run():
            for _ in range(15):
                with transaction.atomic():  # as compute does: the desktop row locked, then metered
                    desktop = Desktop.objects.locked(pk)
                    desktop.power_state = "stopped" if desktop.power_state == "running" else "running"
                    desktop.state = desktop.power_state
                    desktop.save()
                    services.desktop_usage_record(desktop=desktop, at=timezone.now())

        return run

    def sweeper():
        for _ in range(15):
            services.usage_close_until(until=timezone.now())

    _race([toggler(d.pk) for d in desktops] + [sweeper, sweeper])

    ended = timezone.now()
    services.usage_close_until(until=ended)
    for desktop in desktops:
        pieces = list(UsageInterval.objects.filter(desktop=desktop).order_by("start").values_list("start", "end"))
        assert pieces[0][0] == started and pieces[-1][1] == ended
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False)), "a gap or an overlap"

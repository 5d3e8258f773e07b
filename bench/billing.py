"""Billing bench: a month of usage for 10,000 desktops, that month's invoices, and a 1,000-line PDF.

    .venv/bin/python bench/billing.py [--desktops N]

Runs in its own database (bench/env.py: ``cc_bench_billing`` on the MariaDB of DATABASE_URL,
made afresh at each run), beside a live portal without touching it.
The month's usage is what metering writes for desktops switched on and off at
their courses' class times (two 100-minute classes a week, allocated all month); it is
generated with the metering functions and bulk-inserted. One college's vCPU rate changes at
14:00 on the 16th, so that day is priced at two rates. Then it times, and measures the
peak memory (RSS growth and tracemalloc's peak) of, issuing the month's invoices, and the
rendering of one 1,000-line invoice PDF with WeasyPrint. Targets on a 2-core machine:
invoices <= 60 s and <= 1 GiB; the 1,000-line PDF <= 10 s.
"""

import argparse
import resource
import sys
import time
import tracemalloc
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.env import isolate  # noqa: E402

# Its own database and broker (bench/env.py), made before Django reads the settings.
BENCH = isolate("billing")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

MONTH = date(2026, 9, 1)
COLLEGES = 10
DESKTOPS_PER_COURSE = 50
CLASS_SLOTS = [
    (1, dtime(8), dtime(9, 40)),
    (3, dtime(14), dtime(15, 40)),
    (2, dtime(10), dtime(11, 40)),
    (4, dtime(15, 50), dtime(17, 30)),
    (5, dtime(8), dtime(9, 40)),
]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def empty_billing():
    tables = [
        "billing_invoiceline",
        "billing_creditnote",
        "billing_invoice",
        "billing_documentcounter",
        "billing_usageinterval",
        "billing_metercursor",
        "billing_pricerate",
        "billing_priceplan",
        "billing_freeallowance",
    ]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names


def inventory(desktops: int):
    """Tenants (a university and colleges), courses with two class slots a week, desktop rows."""
    from compute.models import Cluster, Desktop, Endpoint, Site
    from tenants.models import ClassTime, Course, Tenant, User

    university, _ = Tenant.objects.get_or_create(
        slug="bench-uni", defaults={"name_zh": "基准大学", "kind": "university", "path": "/bench-uni/"}
    )
    colleges = []
    for n in range(COLLEGES):
        tenant, _ = Tenant.objects.get_or_create(
            slug=f"bench-c{n}",
            defaults={
                "name_zh": f"基准学院{n}",
                "kind": "college",
                "parent": university,
                "path": f"/bench-uni/bench-c{n}/",
            },
        )
        colleges.append(tenant)
    teacher, _ = User.objects.get_or_create(username="bench-teacher")
    site, _ = Site.objects.get_or_create(slug="bench", defaults={"name": "bench"})
    cluster, _ = Cluster.objects.get_or_create(site=site, name="bench-general")
    endpoint, _ = Endpoint.objects.get_or_create(
        name="bench", defaults={"site": site, "cluster": cluster, "kind": "libvirt", "url": "test:///default"}
    )
    have = Desktop.objects.filter(endpoint=endpoint).count()
    courses_needed = -(-desktops // DESKTOPS_PER_COURSE)
    courses = list(Course.objects.filter(code__startswith="BENCH").order_by("pk"))
    for n in range(len(courses), courses_needed):
        course = Course.objects.create(
            tenant=colleges[n % COLLEGES],
            code=f"BENCH{n:04d}",
            name=f"课程{n}",
            teacher=teacher,
            term_start=date(2026, 9, 1),
            term_end=date(2027, 1, 20),
        )
        slots = [CLASS_SLOTS[n % len(CLASS_SLOTS)], CLASS_SLOTS[(n + 2) % len(CLASS_SLOTS)]]
        ClassTime.objects.bulk_create(
            [ClassTime(course=course, weekday=w, start_time=s, end_time=e) for w, s, e in slots]
        )
        courses.append(course)
    users = list(User.objects.filter(username__startswith="bench-s").order_by("pk"))
    User.objects.bulk_create(
        [User(username=f"bench-s{n}", password="!") for n in range(len(users), desktops)], batch_size=2000
    )
    users = list(User.objects.filter(username__startswith="bench-s").order_by("pk")[:desktops])
    Desktop.objects.bulk_create(
        [
            Desktop(
                name=f"bench-{n}",
                vm_name=f"bench-{n}",
                tenant_id=courses[n // DESKTOPS_PER_COURSE].tenant_id,
                course=courses[n // DESKTOPS_PER_COURSE],
                owner=users[n],
                endpoint=endpoint,
                state="stopped",
                power_state="stopped",
                vcpus=2,
                memory_mib=4096,
                disk_gib=40,
            )
            for n in range(have, desktops)
        ],
        batch_size=2000,
    )
    return university, list(Desktop.objects.filter(endpoint=endpoint).select_related("course")[:desktops])


def usage(desktops) -> int:
    from billing.demo import _class_slots, month_rows
    from billing.models import UsageInterval

    slots_by_course = {}
    total = 0
    batch = []
    for desktop in desktops:
        if desktop.course_id not in slots_by_course:
            slots_by_course[desktop.course_id] = _class_slots(desktop.course, MONTH)
        batch += month_rows(
            who={"tenant_id": desktop.tenant_id, "course_id": desktop.course_id, "user_id": desktop.owner_id},
            sizes={"vcpus": desktop.vcpus, "ram_mib": desktop.memory_mib, "disk_gib": desktop.disk_gib},
            slots=slots_by_course[desktop.course_id],
            month=MONTH,
            desktop_id=desktop.pk,
        )
        if len(batch) >= 20000:
            UsageInterval.objects.bulk_create(batch, batch_size=5000)
            total += len(batch)
            batch = []
    UsageInterval.objects.bulk_create(batch, batch_size=5000)
    return total + len(batch)


def thousand_line_pdf(tenant) -> float:
    from billing import documents
    from billing.models import Invoice, InvoiceLine, Item

    invoice = Invoice.objects.create(
        tenant=tenant,
        month=date(2020, 1, 1),
        number="BENCH-PDF-1000",
        total=Decimal("0"),
        issued_at=datetime(2020, 2, 1, tzinfo=django.utils.timezone.get_current_timezone()),
    )
    items = list(Item)
    InvoiceLine.objects.bulk_create(
        [
            InvoiceLine(
                invoice=invoice,
                position=n + 1,
                description=f"BENCH{n // 5:04d} 课程{n // 5} · {items[n % 5].label}",
                item=items[n % 5],
                unit="GiB·小时",
                period_start=date(2020, 1, 1),
                period_end=date(2020, 1, 31),
                quantity=Decimal("1234.5678"),
                free_quantity=Decimal("0"),
                rate=Decimal("0.0500"),
                amount=Decimal("61.73"),
            )
            for n in range(1000)
        ]
    )
    started = time.perf_counter()
    pdf = documents.invoice_pdf(invoice)
    elapsed = time.perf_counter() - started
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "bench-invoice-1000.pdf").write_bytes(pdf)
    return elapsed


def main():
    import django.utils.timezone  # noqa: F401

    parser = argparse.ArgumentParser()
    parser.add_argument("--desktops", type=int, default=10_000)
    args = parser.parse_args()

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database: {BENCH.database_name}")
    empty_billing()
    from billing import services
    from tenants.models import Tenant

    started = time.perf_counter()
    university, desktops = inventory(args.desktops)
    print(f"inventory: {len(desktops)} desktops in {time.perf_counter() - started:.1f} s")
    services.price_plan_create(
        actor=None,
        tenant=university,
        name="bench",
        effective_from=date(2026, 1, 1),
        rates={"vcpu": "0.05", "ram": "0.01", "disk": "0.0003", "gpu": "2", "ip": "0.002"},
    )
    services.price_plan_create(
        actor=None,
        tenant=Tenant.objects.get(slug="bench-c0"),
        name="mid-month",
        # At 14:00, not midnight: that day's pieces are cut at the change when priced.
        effective_from=datetime(2026, 9, 16, 14, tzinfo=ZoneInfo("Asia/Shanghai")),
        rates={"vcpu": "0.06"},
    )
    services.allowance_set(actor=None, tenant=university, item="vcpu", hours="200")

    started = time.perf_counter()
    pieces = usage(desktops)
    print(f"usage: {pieces} pieces for {MONTH:%Y-%m} generated and inserted in {time.perf_counter() - started:.1f} s")

    rss_before = rss_mib()
    tracemalloc.start()
    started = time.perf_counter()
    result = services.invoices_issue(month=MONTH)
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"invoices: {len(result.issued)} issued ({result.skipped} skipped) in {elapsed:.1f} s; "
        f"peak Python memory {peak / 2**20:.1f} MiB (tracemalloc); process peak RSS {rss_mib():.0f} MiB "
        f"(was {rss_before:.0f} MiB before issuing)"
    )
    again = services.invoices_issue(month=MONTH)
    print(f"again: {len(again.issued)} issued, {again.skipped} skipped")
    print(f"pdf: 1,000-line invoice rendered in {thousand_line_pdf(university):.1f} s")


if __name__ == "__main__":
    main()

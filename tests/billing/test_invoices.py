"""Invoices: pricing (inheritance, mid-month changes, allowances, discounts), issuing, immutability, documents."""

import csv
import io
import json
import re
import subprocess
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from billing import documents, services
from billing.errors import BillingError
from billing.models import CreditNote, Invoice, InvoiceLine, Item, MeterCursor, UsageInterval
from common.errors import Conflict, InvalidInput
from tenants.models import Course, Tenant
from tests.billing.conftest import course_of, desktop_row, plan

SHANGHAI = ZoneInfo("Asia/Shanghai")
OCT = date(2026, 10, 1)


def at(day: int, hour: int = 0, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI)


def run(desktop, start: datetime, end: datetime):
    """The desktop runs over [start, end) and is stopped around it."""
    desktop.state, desktop.power_state = "running", "running"
    desktop.save()
    services.desktop_usage_record(desktop=desktop, at=start)
    desktop.state, desktop.power_state = "stopped", "stopped"
    desktop.save()
    services.desktop_usage_record(desktop=desktop, at=end)


@pytest.fixture
def billed(scenario, course):
    """University rates for every item; cs overrides vCPU from Oct 16; a desktop of CS101 in October."""
    plan(
        scenario.sysadmin,
        scenario.university,
        date(2026, 1, 1),
        vcpu="0.05",
        ram="0.01",
        disk="0.0003",
        gpu="2",
        ip="0.002",
    )
    plan(scenario.sysadmin, scenario.tenant_a, date(2026, 10, 16), vcpu="0.08")
    desktop = desktop_row(
        scenario.tenant_a,
        owner=scenario.student,
        course=course,
        state="stopped",
        power="stopped",
        vcpus=2,
        memory_mib=4096,
        disk_gib=40,
    )
    services.desktop_usage_record(desktop=desktop, at=at(1))
    run(desktop, at(10, 8), at(10, 18))  # 10 h at the university's vCPU rate
    run(desktop, at(20, 8), at(20, 13))  # 5 h at cs's own vCPU rate
    return desktop


def lines_of(invoice) -> dict:
    return {(line.item, str(line.rate)): line for line in invoice.lines.all()}


@pytest.mark.django_db
def test_invoice_prices_each_part_of_the_month_at_its_own_inherited_or_overridden_rate(scenario, billed):
    result = services.invoices_issue(month="2026-10")

    invoice = Invoice.objects.get(number=result.issued[0])
    lines = lines_of(invoice)
    assert lines[(Item.VCPU, "0.0500")].quantity == Decimal("20.0000")  # 2 vCPU x 10 h
    assert lines[(Item.VCPU, "0.0500")].amount == Decimal("1.00")
    assert lines[(Item.VCPU, "0.0800")].quantity == Decimal("10.0000")
    assert lines[(Item.VCPU, "0.0800")].period_start == date(2026, 10, 20)
    assert lines[(Item.VCPU, "0.0800")].amount == Decimal("0.80")
    assert lines[(Item.RAM, "0.0100")].quantity == Decimal("60.0000")  # 4 GiB x 15 h
    # The system disk is charged all month, running or not: 40 GiB x 31 days x 24 h.
    assert lines[(Item.DISK, "0.0003")].quantity == Decimal(40 * 31 * 24)
    assert lines[(Item.DISK, "0.0003")].amount == Decimal("8.93")  # 8.928 rounded once, half up
    assert invoice.total == sum(line.amount for line in invoice.lines.all())
    assert invoice.total == Decimal("1.00") + Decimal("0.80") + Decimal("0.60") + Decimal("8.93")
    assert all("CS101" in line.description for line in invoice.lines.all())


@pytest.mark.django_db
def test_issuing_twice_issues_nothing_new(scenario, billed):
    first = services.invoices_issue(month="2026-10")
    second = services.invoices_issue(month="2026-10")

    assert len(first.issued) == 1 and first.skipped == 0
    assert second.issued == [] and second.skipped == 1
    assert Invoice.objects.count() == 1


@pytest.mark.django_db
def test_invoice_numbers_are_sequential_per_year_without_gaps(scenario, billed):
    other = desktop_row(scenario.tenant_b, owner=scenario.stranger, state="stopped", power="stopped")
    services.desktop_usage_record(desktop=other, at=at(3))
    year = datetime.now(SHANGHAI).year

    result = services.invoices_issue(month="2026-10")
    # A failed issue gives its number back.
    with pytest.raises(RuntimeError), transaction.atomic():
        services.invoice_issue(actor=None, tenant=scenario.tenant_a, month=date(2026, 9, 1))
        raise RuntimeError("crash after numbering")
    later = services.credit_note_issue(
        actor=scenario.finance, invoice=Invoice.objects.first(), amount="0.01", reason="x"
    )

    assert result.issued == [f"INV-{year}-000001", f"INV-{year}-000002"]
    assert later.number == f"CN-{year}-000001"
    assert services.invoice_issue(actor=None, tenant=scenario.tenant_a, month=date(2026, 9, 1)).number == (
        f"INV-{year}-000003"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("month", "code"),
    [
        ("2099-01", BillingError.MONTH_NOT_OVER),
        ("this month", BillingError.MONTH_NOT_OVER),  # not over until its last microsecond has passed
        ("2026-13", BillingError.MONTH_INVALID),
        ("last month", BillingError.MONTH_INVALID),
        ("", BillingError.MONTH_INVALID),
        ("1999-12", BillingError.MONTH_INVALID),
    ],
)
def test_a_month_not_over_or_malformed_is_refused_and_nothing_is_issued(scenario, billed, month, code):
    if month == "this month":
        month = datetime.now(SHANGHAI).strftime("%Y-%m")
    with pytest.raises(InvalidInput) as err:
        services.invoices_issue(month=month)
    assert err.value.code == code
    assert not Invoice.objects.exists()
    assert UsageInterval.objects.filter(end__gt=at(1, month=11)).count() == 0  # nothing closed ahead of time


@pytest.mark.django_db
def test_issuing_closes_open_intervals_at_the_month_boundary_first(scenario, course):
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running")
    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="1")
    services.desktop_usage_record(desktop=desktop, at=at(31, 22))  # still running, interval open

    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])

    assert lines_of(invoice)[(Item.VCPU, "1.0000")].quantity == Decimal("4.0000")  # 2 vCPU x 2 h, not into November
    # Closed at the boundary and reopened there: November starts where October ended.
    assert UsageInterval.objects.get(desktop=desktop).end == at(1, month=11)
    assert MeterCursor.objects.get(pk=desktop.pk).since == at(1, month=11)


@pytest.mark.django_db
def test_an_issued_invoice_is_immutable_and_corrected_by_credit_notes(scenario, billed):
    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])

    invoice.total = Decimal("0")
    with pytest.raises(Conflict):
        invoice.save()
    with pytest.raises(Conflict):
        invoice.delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(total=Decimal("0"))
    with pytest.raises(DatabaseError), transaction.atomic():
        InvoiceLine.objects.filter(invoice=invoice).update(amount=Decimal("0"))

    note = services.credit_note_issue(actor=scenario.finance, invoice=invoice, amount="1.00", reason="多计了 1 元")
    invoice = Invoice.objects.get(pk=invoice.pk)
    assert note.invoice == invoice and invoice.status == Invoice.Status.PARTLY_CREDITED
    assert invoice.total == Decimal("11.33")
    with pytest.raises(Conflict) as err:
        services.credit_note_issue(actor=scenario.finance, invoice=invoice, amount="10.34", reason="too much")
    assert err.value.code == BillingError.CREDIT_EXCEEDS_BALANCE
    with pytest.raises(DatabaseError), transaction.atomic():
        CreditNote.objects.filter(pk=note.pk).update(amount=Decimal("5"))


@pytest.mark.django_db
def test_free_allowance_per_course_per_term_and_discounts(scenario, course):
    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), discount=10, vcpu="0.1")
    services.allowance_set(actor=scenario.sysadmin, tenant=scenario.university, item="vcpu", hours="30")
    desktop = desktop_row(
        scenario.tenant_a, owner=scenario.student, course=course, state="stopped", power="stopped", vcpus=2, disk_gib=0
    )
    services.desktop_usage_record(desktop=desktop, at=at(1, month=9))
    run(desktop, at(5, 8, month=9), at(5, 18, month=9))  # 20 vCPU-h in September (in term)
    run(desktop, at(7, 8), at(7, 18))  # 20 vCPU-h in October: 10 of them still free

    result = services.invoices_issue(month="2026-10")
    september = Invoice.objects.get(number=services.invoices_issue(month="2026-09").issued[0])
    october = Invoice.objects.get(number=result.issued[0])

    sept_line = lines_of(september)[(Item.VCPU, "0.1000")]
    oct_line = lines_of(october)[(Item.VCPU, "0.1000")]
    assert (sept_line.quantity, sept_line.free_quantity, sept_line.amount) == (Decimal(20), Decimal(20), Decimal("0"))
    assert (oct_line.quantity, oct_line.free_quantity) == (Decimal(20), Decimal(10))
    assert oct_line.amount == Decimal("0.90")  # 10 h x 0.1 x 90%


@pytest.mark.django_db
def test_the_running_estimate_gives_courses_of_two_terms_the_free_hours_their_invoice_does(scenario, course):
    """The estimate reads every course's earlier use in one query; the invoice, course by course: same lines."""
    from billing.selectors import month_drafts

    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="0.1")
    services.allowance_set(actor=scenario.sysadmin, tenant=scenario.university, item="vcpu", hours="30")
    later = course_of(scenario.tenant_a, scenario.teacher, code="CS300", term=(date(2026, 9, 6), date(2027, 1, 20)))
    for taught, student in ((course, scenario.student), (later, scenario.student2)):
        desktop = desktop_row(
            scenario.tenant_a, owner=student, course=taught, state="stopped", power="stopped", vcpus=2, disk_gib=0
        )
        services.desktop_usage_record(desktop=desktop, at=at(1, month=9))
        run(desktop, at(5, 8, month=9), at(5, 18, month=9))  # in CS101's term, before CS300's
        run(desktop, at(8, 8, month=9), at(8, 12, month=9))  # in both terms
        run(desktop, at(7, 8), at(7, 18))

    [estimate] = month_drafts([scenario.tenant_a], now=at(31, 23))
    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])

    def lines(rows):
        return sorted((r.course_id, r.item, r.quantity, r.free_quantity, r.amount) for r in rows)

    assert lines(estimate.lines) == lines(invoice.lines.all())
    free = {r.course_id: r.free_quantity for r in invoice.lines.all() if r.item == Item.VCPU}
    assert free == {course.pk: Decimal(2), later.pk: Decimal(20)}  # 28 and 8 of the 30 free hours used before October


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rate", "code"),
    [
        ("0.00001", BillingError.RATE_TOO_PRECISE),
        ("-1", BillingError.RATE_NEGATIVE),
        ("abc", BillingError.RATE_INVALID),
        ("NaN", BillingError.RATE_INVALID),
    ],
)
def test_bad_rates_are_refused(scenario, rate, code):
    with pytest.raises(InvalidInput) as err:
        services.price_plan_create(
            actor=scenario.finance, tenant=scenario.tenant_a, name="x", effective_from=OCT, rates={"vcpu": rate}
        )
    assert err.value.code == code


@pytest.mark.django_db
def test_issue_invoices_command_prints_json_and_refuses_a_future_month(scenario, billed):
    out = io.StringIO()
    call_command("issue_invoices", "--month", "2026-10", "--json", stdout=out)
    again = io.StringIO()
    call_command("issue_invoices", "--month", "2026-10", "--json", stdout=again)

    assert json.loads(out.getvalue())["issued"] == [Invoice.objects.get().number]
    assert json.loads(again.getvalue()) == {"issued": [], "skipped": 1}
    with pytest.raises(CommandError, match=BillingError.MONTH_NOT_OVER):
        call_command("issue_invoices", "--month", "2099-12")


# --- documents ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_invoice_pdf_read_back_matches_the_database_to_the_fen_with_an_embedded_cjk_font(scenario, billed, tmp_path):
    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])
    path = tmp_path / "invoice.pdf"
    path.write_bytes(documents.invoice_pdf(invoice))

    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout

    assert "Noto-Sans-CJK-SC" in fonts
    cjk = [line.split() for line in fonts.splitlines()[2:] if "Noto-Sans-CJK-SC" in line]
    assert cjk and all(columns[-5] == "yes" for columns in cjk), fonts  # the "emb" column
    assert invoice.number in text and "计算机学院" in text
    rows = [line for line in text.splitlines() if re.match(r"\s*\d+\s+CS101", line)]
    assert len(rows) == invoice.lines.count()
    for row, line in zip(rows, invoice.lines.order_by("position"), strict=True):
        numbers = re.findall(r"-?\d+\.\d+", row)
        assert numbers[-1] == str(line.amount), row
        assert str(line.quantity) in numbers and str(line.rate) in numbers, row
    total = re.search(r"合计 Total \(CNY\)\s+(\d+\.\d{2})", text)
    assert total and Decimal(total.group(1)) == invoice.total == sum(x.amount for x in invoice.lines.all())


@pytest.mark.django_db
def test_invoice_csv_has_a_bom_and_the_xlsx_reads_back(scenario, billed):
    from openpyxl import load_workbook

    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])

    raw = documents.invoice_csv(invoice)
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][1] == invoice.number and rows[-1][-1] == str(invoice.total)
    assert len(rows) == invoice.lines.count() + 3

    sheet = load_workbook(io.BytesIO(documents.invoice_xlsx(invoice))).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][1] == invoice.number
    assert Decimal(str(values[-1][-1])) == invoice.total
    assert sum(Decimal(str(v[-1])) for v in values[2:-1]) == invoice.total


@pytest.mark.django_db
def test_invoice_downloads_defuse_formulas_in_names_and_keep_amounts_numbers(scenario, billed, course):
    from openpyxl import load_workbook

    Tenant.objects.filter(pk=scenario.tenant_a.pk).update(name_zh="+cmd|' /C calc'!A0")
    Course.objects.filter(pk=course.pk).update(code='=HYPERLINK("http://x.example")', name="@SUM(A1)")
    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])
    last = invoice.lines.order_by("position").last()
    InvoiceLine.objects.create(  # a correction: negative quantity and amount
        invoice=invoice,
        position=last.position + 1,
        description="-1 h corrected",
        item=last.item,
        unit=last.unit,
        period_start=last.period_start,
        period_end=last.period_end,
        quantity=Decimal("-2"),
        rate=last.rate,
        amount=Decimal("-12.50"),
    )

    rows = list(csv.reader(io.StringIO(documents.invoice_csv(invoice).decode("utf-8-sig"))))
    assert rows[0][3] == "'+cmd|' /C calc'!A0"
    assert rows[2][1].startswith("'=HYPERLINK(")
    assert rows[-2][1] == "'-1 h corrected"
    assert Decimal(rows[-2][5]) == -2 and rows[-2][-1] == "-12.50"

    values = list(load_workbook(io.BytesIO(documents.invoice_xlsx(invoice))).active.iter_rows(values_only=True))
    assert values[0][3] == "'+cmd|' /C calc'!A0"
    assert values[2][1].startswith("'=HYPERLINK(")
    assert values[-2][1] == "'-1 h corrected"
    assert values[-2][5] == -2 and values[-2][-1] == -12.5  # numbers, so the sheet can sum them


@pytest.mark.django_db
def test_the_month_of_a_course_outside_its_term_has_no_free_hours(scenario):
    late = course_of(scenario.tenant_a, scenario.teacher, code="CS900", term=(date(2026, 10, 20), date(2026, 12, 31)))
    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="1")
    services.allowance_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, item="vcpu", hours="100")
    desktop = desktop_row(
        scenario.tenant_a, owner=scenario.student, course=late, state="stopped", power="stopped", vcpus=1, disk_gib=0
    )
    services.desktop_usage_record(desktop=desktop, at=at(1))
    run(desktop, at(10, 8), at(10, 10))  # before the term: charged
    run(desktop, at(25, 8), at(25, 10))  # in term: free

    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])

    line = lines_of(invoice)[(Item.VCPU, "1.0000")]
    assert (line.quantity, line.free_quantity, line.amount) == (Decimal(4), Decimal(2), Decimal("2.00"))


@pytest.mark.django_db
@pytest.mark.parametrize("group_by", ["course", "user", "tenant", "item"])
def test_the_usage_report_prices_each_side_of_a_rate_change_at_its_own_rate(scenario, billed, group_by):
    from billing.selectors import usage_report_for

    report = usage_report_for(scenario.finance, start="2026-10-01", end="2026-10-31", group_by=group_by)

    vcpu = [row for row in report.rows if row.item == Item.VCPU]
    assert len(vcpu) == 1 and vcpu[0].quantity == Decimal(30) and vcpu[0].cost == Decimal("1.80")
    assert report.total == Decimal("11.33")
    # Each day is rounded to the fen on its own: at most half a fen per day apart.
    assert abs(sum(cost for _day, cost in report.daily) - report.total) <= Decimal("0.005") * len(report.daily)


# --- rates that change on a whole hour ---------------------------------------------------------------


@pytest.fixture
def afternoon_change(scenario, course):
    """cs's vCPU rate goes from 0.05 to 0.08 at 14:00 on Oct 20; a CS101 desktop runs 08:00-18:00 that day."""
    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="0.05", disk="0.0003")
    plan(scenario.sysadmin, scenario.tenant_a, at(20, 14), vcpu="0.08")
    desktop = desktop_row(
        scenario.tenant_a, owner=scenario.student, course=course, state="stopped", power="stopped", vcpus=2
    )
    services.desktop_usage_record(desktop=desktop, at=at(1))
    return desktop


@pytest.mark.django_db
def test_a_rate_change_at_a_whole_hour_prices_each_side_of_the_hour_at_its_own_rate(scenario, afternoon_change):
    run(afternoon_change, at(20, 8), at(20, 18))

    invoice = Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])

    lines = lines_of(invoice)
    before, after = lines[(Item.VCPU, "0.0500")], lines[(Item.VCPU, "0.0800")]
    assert (before.quantity, before.amount) == (Decimal("12.0000"), Decimal("0.60"))  # 2 vCPU x 08:00-14:00
    assert (after.quantity, after.amount) == (Decimal("8.0000"), Decimal("0.64"))  # 2 vCPU x 14:00-18:00
    assert before.period_end == after.period_start == date(2026, 10, 20)
    assert lines[(Item.DISK, "0.0003")].quantity == Decimal(40 * 31 * 24)  # one rate all month: one line
    assert invoice.total == Decimal("0.60") + Decimal("0.64") + Decimal("8.93")


@pytest.mark.django_db
def test_the_usage_report_and_the_running_estimate_cut_at_the_hour_a_rate_changes(scenario, afternoon_change):
    from billing.selectors import month_drafts, usage_report_for

    # Still running at 18:00: the estimate counts the open interval up to now, cut at 14:00 too.
    afternoon_change.state = afternoon_change.power_state = "running"
    afternoon_change.save()
    services.desktop_usage_record(desktop=afternoon_change, at=at(20, 8))
    report = usage_report_for(scenario.finance, start="2026-10-20", end="2026-10-20", now=at(20, 18))
    (draft,) = month_drafts([scenario.tenant_a], now=at(20, 18))

    vcpu = next(row for row in report.rows if row.item == Item.VCPU)
    assert (vcpu.quantity, vcpu.cost) == (Decimal("20.0000"), Decimal("1.24"))
    estimated = {(line.item, line.rate): (line.quantity, line.amount) for line in draft.lines}
    assert estimated[(Item.VCPU, Decimal("0.0500"))] == (Decimal("12.0000"), Decimal("0.60"))
    assert estimated[(Item.VCPU, Decimal("0.0800"))] == (Decimal("8.0000"), Decimal("0.64"))

    # The same once the interval is closed: closed pieces are cut where the open one was.
    services.usage_close_until(until=at(20, 18))
    closed = usage_report_for(scenario.finance, start="2026-10-20", end="2026-10-20", now=at(20, 18))
    assert next(row for row in closed.rows if row.item == Item.VCPU).cost == Decimal("1.24")
    assert closed.daily == report.daily


@pytest.mark.django_db
@pytest.mark.parametrize("when", [at(20, 14).replace(minute=30), at(20, 14).replace(second=1)])
def test_a_plan_that_does_not_start_on_a_whole_hour_is_refused(scenario, when):
    with pytest.raises(InvalidInput) as err:
        plan(scenario.finance, scenario.tenant_a, when, vcpu="0.1")
    assert err.value.code == BillingError.EFFECTIVE_NOT_WHOLE_HOUR

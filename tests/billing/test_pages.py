"""The billing pages: usage with the chart data, invoices and downloads, price plans, budgets, who sees them."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from billing import services
from billing.models import Budget, Invoice, PricePlan
from tests.billing.conftest import desktop_row, plan

SHANGHAI = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    # Finance must use a second factor (tested in tests/audit and the browser test); pages here
    # are tested with a logged-in session as if it had been verified.
    settings.SECOND_FACTOR_REQUIRED = False


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def invoice(scenario, course):
    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="0.05", disk="0.0003")
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running")
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 5, 8, tzinfo=SHANGHAI))
    return Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])


def test_finance_sees_usage_with_daily_chart_data(scenario, invoice):
    response = client_for(scenario.finance).get(
        "/billing/usage/", {"start": "2026-10-01", "end": "2026-10-31", "group_by": "course"}
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="daily-cost-data"' in body and "chart.umd.js" in body and "CS101" in body
    assert len(response.context["daily"]) == 31


def test_a_reversed_date_range_is_a_form_error(scenario):
    response = client_for(scenario.finance).get("/billing/usage/", {"start": "2026-10-31", "end": "2026-10-01"})
    assert response.status_code == 200 and "结束日期早于开始日期" in response.content.decode()


def test_students_and_strangers_see_no_billing_pages(scenario, invoice):
    for who in (scenario.student, scenario.stranger, scenario.stranger_admin):
        client = client_for(who)
        assert client.get(f"/billing/invoices/{invoice.pk}/").status_code == 404
        assert client.get(f"/billing/invoices/{invoice.pk}/pdf/").status_code == 404
    assert client_for(scenario.student).get("/billing/invoices/").status_code == 404
    assert client_for(scenario.teacher).get("/billing/usage/").status_code == 200  # their course's cost
    assert client_for(scenario.teacher).get("/billing/invoices/").status_code == 404


def test_finance_lists_invoices_and_downloads_each_format(scenario, invoice):
    client = client_for(scenario.finance)
    listing = client.get("/billing/invoices/")
    detail = client.get(f"/billing/invoices/{invoice.pk}/")

    assert invoice.number in listing.content.decode() and "已开具" in listing.content.decode()
    assert str(invoice.total) in detail.content.decode()
    assert client.get(f"/billing/invoices/{invoice.pk}/pdf/").content.startswith(b"%PDF")
    assert client.get(f"/billing/invoices/{invoice.pk}/xlsx/").content.startswith(b"PK")
    assert client.get(f"/billing/invoices/{invoice.pk}/csv/").content.startswith(b"\xef\xbb\xbf")
    assert client.get(f"/billing/invoices/{invoice.pk}/doc/").status_code == 404


def test_issuing_from_the_page_asks_for_reauthentication_first(scenario, invoice):
    response = client_for(scenario.finance).post("/billing/invoices/", {"month": "2026-09"})
    assert response.status_code == 302 and "/audit/reauth/" in response["Location"]


def test_a_too_precise_rate_is_shown_as_a_form_error(scenario):
    response = client_for(scenario.finance).post(
        "/billing/price-plans/",
        {"tenant": "cs", "name": "x", "effective_from": "2026-12-01", "rate_vcpu": "0.12345"},
    )
    assert response.status_code == 200 and "单价最多保留 4 位小数" in response.content.decode()
    assert not PricePlan.objects.exists()


def test_finance_sets_a_budget_from_the_page(scenario):
    response = client_for(scenario.finance).post(
        "/billing/budgets/", {"tenant": "cs", "course": "", "amount": "100.00", "block_new_desktops": "on"}
    )
    assert response.status_code == 302
    budget = Budget.objects.get()
    assert budget.amount == 100 and budget.block_new_desktops and budget.course is None


def test_finance_sets_a_plan_from_a_whole_hour_and_a_half_hour_is_a_form_error(scenario):
    client = client_for(scenario.finance)
    form = {"tenant": "cs", "name": "午后调价", "rate_vcpu": "0.06"}

    half = client.post("/billing/price-plans/", {**form, "effective_from": "2026-12-01T14:30"})
    hour = client.post("/billing/price-plans/", {**form, "effective_from": "2026-12-01T14:00"})
    listing = client.get("/billing/price-plans/").content.decode()

    assert half.status_code == 200 and "生效时间必须是整点" in half.content.decode()
    assert hour.status_code == 302
    assert PricePlan.objects.get().effective_from == datetime(2026, 12, 1, 14, tzinfo=SHANGHAI)
    assert "2026-12-01 14:00" in listing and 'type="datetime-local"' in listing and 'step="3600"' in listing


def test_a_teacher_sees_the_cost_of_their_courses_only_and_finance_the_running_estimate(scenario, invoice, course):
    from tests.billing.conftest import course_of

    other = course_of(scenario.tenant_a, scenario.tenant_admin, code="CS999")
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student2, course=other, state="running", power="running")
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 6, 8, tzinfo=SHANGHAI))
    services.usage_close_until(until=datetime(2026, 10, 7, tzinfo=SHANGHAI))
    query = {"start": "2026-10-01", "end": "2026-10-31", "group_by": "course"}

    teacher = client_for(scenario.teacher).get("/billing/usage/", query)
    finance = client_for(scenario.finance).get("/billing/usage/", query)

    rows = teacher.context["report"].rows
    assert {row.course.code for row in rows} == {"CS101"} and all(row.cost >= 0 for row in rows)
    assert "CS101" in teacher.content.decode() and "CS999" not in teacher.content.decode()
    assert teacher.context["estimates"] == [] and 'data-testid="estimates"' not in teacher.content.decode()
    assert {row.course.code for row in finance.context["report"].rows} == {"CS101", "CS999"}
    assert 'data-testid="estimates"' in finance.content.decode()  # CS101's desktop still runs this month
    assert 'data-testid="estimate-note"' in finance.content.decode()  # why it differs from the table's total


def test_the_usage_filters_carry_iso_dates_the_browsers_date_field_reads(scenario):
    from django.utils import timezone

    today = timezone.localdate()
    body = client_for(scenario.finance).get("/billing/usage/").content.decode()

    assert f'name="start" id="id_start" value="{today.replace(day=1).isoformat()}"' in body
    assert f'name="end" id="id_end" value="{today.isoformat()}"' in body


def test_a_student_sees_their_own_usage_and_nobody_elses(scenario, invoice, course):
    other = desktop_row(scenario.tenant_a, owner=scenario.student2, course=course, state="running", power="running")
    services.desktop_usage_record(desktop=other, at=datetime(2026, 10, 6, 8, tzinfo=SHANGHAI))
    params = {"start": "2026-10-01", "end": "2026-10-31", "group_by": "user"}

    mine = client_for(scenario.student).get("/billing/usage/", params)
    theirs = client_for(scenario.student2).get("/billing/usage/", params)

    assert mine.status_code == 200 and theirs.status_code == 200
    assert {row.user for row in mine.context["report"].rows} == {scenario.student}
    assert {row.user for row in theirs.context["report"].rows} == {scenario.student2}
    assert not mine.context["estimates"]  # the tenant's estimate is for those who read its bills


def test_after_reauthenticating_the_issue_click_is_carried_out_not_lost(scenario, course):
    import time

    from audit.security import SESSION_REAUTH

    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="0.05")
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running")
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 9, 5, 8, tzinfo=SHANGHAI))
    client = client_for(scenario.finance)

    asked = client.post("/billing/invoices/", {"month": "2026-09"})
    assert asked.status_code == 302 and asked["Location"].startswith("/audit/reauth/")
    assert "resume%3Dissue" in asked["Location"]
    assert not Invoice.objects.filter(month__year=2026, month__month=9).exists()

    session = client.session
    session[SESSION_REAUTH] = time.time()  # what the re-authentication page records
    session.save()
    back = client.get("/billing/invoices/?resume=issue", follow=True)

    assert Invoice.objects.filter(tenant=scenario.tenant_a, month__year=2026, month__month=9).count() == 1
    assert "已开具 1 张账单" in back.content.decode()
    again = client.get("/billing/invoices/?resume=issue")  # the pending issue was used up
    assert again.status_code == 200


def test_the_usage_page_costs_the_same_queries_for_3_or_30_courses(scenario):
    """The table, the chart and the running estimate (free allowances per course included) alike."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import FreeAllowance, UsageInterval
    from tests.billing.conftest import course_of
    from tests.querycount import assert_constant_queries

    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="0.05", disk="0.0003")
    FreeAllowance.objects.create(tenant=scenario.university, item="vcpu", hours=1)
    today = timezone.localdate()
    made = {"n": 0}

    def grow(n):
        for _ in range(n):
            made["n"] += 1
            course = course_of(
                scenario.tenant_a, scenario.teacher, code=f"U{made['n']:03d}", term=(date(2026, 1, 1), date(2099, 1, 1))
            )
            start = datetime.combine(today, datetime.min.time(), tzinfo=SHANGHAI)
            UsageInterval.objects.create(
                tenant=scenario.tenant_a, course=course, user=scenario.student, day=today, start=start,
                end=start + timedelta(hours=1), duration_us=3_600_000_000, running=True, vcpus=2, ram_mib=4096,
                disk_gib=40,
            )  # fmt: skip

    from django.core.cache import cache

    def fetch():
        cache.clear()  # the estimate is priced on each visit measured, not read back (ESTIMATE_SECONDS)
        return client.get("/billing/usage/")

    client = client_for(scenario.finance)
    client.get("/billing/usage/")  # warm the per-process caches (content types) first
    assert_constant_queries(fetch, grow)
    page = fetch().content.decode()
    assert "U030" in page and 'data-testid="estimates"' in page

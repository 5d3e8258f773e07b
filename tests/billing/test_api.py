"""The billing API: who sees what, downloads, issuing with re-authentication, bad input, query counts."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from audit.errors import AuditError
from billing import services
from billing.errors import BillingError
from billing.models import Invoice
from tests.audit.conftest import totp_now
from tests.billing.conftest import course_of, desktop_row, plan
from tests.factories import PASSWORD
from tests.querycount import assert_constant_queries

SHANGHAI = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db


@pytest.fixture
def october(scenario, course):
    plan(scenario.sysadmin, scenario.university, date(2026, 1, 1), vcpu="0.05", ram="0.01", disk="0.0003")
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running")
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 5, 8, tzinfo=SHANGHAI))
    desktop.state = desktop.power_state = "stopped"
    desktop.save()
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 5, 10, tzinfo=SHANGHAI))
    return Invoice.objects.get(number=services.invoices_issue(month="2026-10").issued[0])


def test_finance_lists_invoices_with_a_total_and_a_student_sees_none(api, scenario, october):
    finance = api.as_user(scenario.finance).get("/api/v1/invoices/").json()
    assert [(i["number"], i["total"], i["status"]) for i in finance["results"]] == [
        (october.number, str(october.total), "issued")
    ]
    detail = api.as_user(scenario.finance).get(f"/api/v1/invoices/{october.pk}/").json()
    assert len(detail["lines"]) == october.lines.count()

    for who in (scenario.student, scenario.teacher, scenario.stranger):
        assert api.as_user(who).get("/api/v1/invoices/").json()["results"] == []
        assert api.as_user(who).get(f"/api/v1/invoices/{october.pk}/pdf/").status_code == 404


def test_invoice_downloads_as_pdf_csv_and_xlsx(api, scenario, october):
    client = api.as_user(scenario.finance)

    pdf = client.get(f"/api/v1/invoices/{october.pk}/pdf/")
    csv = client.get(f"/api/v1/invoices/{october.pk}/csv/")
    xlsx = client.get(f"/api/v1/invoices/{october.pk}/xlsx/", HTTP_ACCEPT="application/octet-stream")

    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    assert f'filename="{october.number}.xlsx"' in xlsx["Content-Disposition"]


def test_a_teacher_sees_their_courses_cost_a_student_their_own_and_a_stranger_nothing(api, scenario, october):
    teacher = api.as_user(scenario.teacher).get("/api/v1/usage/", {"from": "2026-10-01", "to": "2026-10-31"})
    student = api.as_user(scenario.student).get("/api/v1/usage/", {"from": "2026-10-01", "to": "2026-10-31"})
    stranger = api.as_user(scenario.stranger).get("/api/v1/usage/", {"from": "2026-10-01", "to": "2026-10-31"})

    rows = teacher.json()["results"]
    assert {r["item"] for r in rows} == {"vcpu", "ram", "disk"} and {r["course"] for r in rows} == {"CS101"}
    vcpu = next(r for r in rows if r["item"] == "vcpu")
    assert vcpu["quantity"] == "4.0000" and vcpu["cost"] == "0.20"
    # October's only desktop is the student's own: they see its cost too (#13.6), nobody else's.
    assert student.json()["results"] == rows and stranger.json()["results"] == []


def test_usage_by_user_and_daily_cost(api, scenario, october):
    client = api.as_user(scenario.finance)
    by_user = client.get("/api/v1/usage/", {"from": "2026-10-05", "to": "2026-10-05", "group_by": "user"}).json()
    daily = client.get("/api/v1/usage/daily/", {"from": "2026-10-04", "to": "2026-10-06"}).json()

    assert {r["user"] for r in by_user["results"]} == {"a_student"}
    assert [d["day"] for d in daily] == ["2026-10-04", "2026-10-05", "2026-10-06"]
    # 2 vCPU x 2 h x 0.05 + 4 GiB x 2 h x 0.01 + 40 GiB x 16 h (from 08:00, running or not) x 0.0003
    assert daily[1]["cost"] == "0.47"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "2026-10-31", "to": "2026-10-01"}, BillingError.DATE_RANGE_REVERSED),
        ({"from": "31/10/2026"}, BillingError.DATE_INVALID),
        ({"group_by": "planet"}, BillingError.GROUP_BY_INVALID),
    ],
)
def test_usage_refuses_bad_ranges(api, scenario, params, code):
    response = api.as_user(scenario.finance).get("/api/v1/usage/", params)
    assert response.status_code == 400 and response.json()["code"] == code


@pytest.fixture
def finance_device(scenario):
    """Finance must use a second factor (等保): re-authentication asks for its one-time code (#14.3)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=scenario.finance, name="totp", confirmed=True)


def test_issuing_over_the_api_needs_reauthentication(api, scenario, course, finance_device):
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, state="stopped", power="stopped")
    services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 5, tzinfo=SHANGHAI))
    client = api.as_user(scenario.finance)

    refused = client.post("/api/v1/invoices/issue/", {"month": "2026-10"}, format="json")
    no_code = client.post(
        "/api/v1/invoices/issue/", {"month": "2026-10"}, format="json", HTTP_X_REAUTH_PASSWORD=PASSWORD
    )
    issued = client.post(
        "/api/v1/invoices/issue/",
        {"month": "2026-10"},
        format="json",
        HTTP_X_REAUTH_PASSWORD=PASSWORD,
        HTTP_X_REAUTH_OTP=totp_now(finance_device),
    )
    future = client.post(
        "/api/v1/invoices/issue/",
        {"month": "2099-01"},
        format="json",
        HTTP_X_REAUTH_PASSWORD=PASSWORD,
        HTTP_X_REAUTH_OTP=totp_now(finance_device, offset=1),
    )
    teacher = api.as_user(scenario.teacher).post("/api/v1/invoices/issue/", {"month": "2026-10"}, format="json")

    assert refused.status_code == 403 and refused.json()["code"] == AuditError.REAUTHENTICATION_REQUIRED
    assert no_code.status_code == 403 and no_code.json()["code"] == AuditError.REAUTHENTICATION_REQUIRED
    assert issued.status_code == 200 and len(issued.json()["issued"]) == 1
    assert future.status_code == 400 and future.json()["code"] == BillingError.MONTH_NOT_OVER
    assert teacher.status_code == 403


def test_credit_note_over_the_api(api, scenario, october, finance_device):
    client = api.as_user(scenario.finance)
    response = client.post(
        f"/api/v1/invoices/{october.pk}/credit-notes/",
        {"amount": "0.10", "reason": "重复计费"},
        format="json",
        HTTP_X_REAUTH_PASSWORD=PASSWORD,
        HTTP_X_REAUTH_OTP=totp_now(finance_device),
    )
    assert response.status_code == 201 and response.json()["invoice"] == october.number
    assert client.get(f"/api/v1/invoices/{october.pk}/").json()["status"] == "partly_credited"


def test_finance_creates_a_price_plan_and_bad_rates_are_refused(api, scenario):
    client = api.as_user(scenario.finance)
    body = {"tenant": "cs", "name": "2026 秋", "effective_from": "2026-11-01", "rates": {"vcpu": "0.06"}}

    created = client.post("/api/v1/price-plans/", body, format="json")
    precise = client.post(
        "/api/v1/price-plans/", {**body, "effective_from": "2026-12-01", "rates": {"vcpu": "0.00001"}}, format="json"
    )
    negative = client.post(
        "/api/v1/price-plans/", {**body, "effective_from": "2026-12-01", "rates": {"ram": "-0.1"}}, format="json"
    )
    other = client.post("/api/v1/price-plans/", {**body, "tenant": "me"}, format="json")
    teacher = api.as_user(scenario.teacher).post("/api/v1/price-plans/", body, format="json")

    assert created.status_code == 201 and created.json()["rates"][0]["rate"] == "0.0600"
    assert precise.status_code == 400 and precise.json()["code"] == BillingError.RATE_TOO_PRECISE
    assert negative.status_code == 400 and negative.json()["code"] == BillingError.RATE_NEGATIVE
    assert other.status_code == 404
    assert teacher.status_code == 403


def test_invoice_list_costs_a_constant_number_of_queries(api, scenario):
    client = api.as_user(scenario.finance)
    state = {"n": 0}

    def grow(n):
        for _ in range(n):
            state["n"] += 1
            month = date(2020 + state["n"] // 12, state["n"] % 12 + 1, 1)
            invoice = services.invoice_issue(actor=None, tenant=scenario.tenant_a, month=month)
            services.credit_note_issue(
                actor=None, invoice=invoice, amount="0.01", reason="x"
            ) if invoice.total else None

    client.get("/api/v1/invoices/")  # the user's roles are cached on the user after the first request
    assert_constant_queries(lambda: client.get("/api/v1/invoices/"), grow)


def test_price_plan_and_usage_lists_cost_a_constant_number_of_queries(api, scenario):
    client = api.as_user(scenario.finance)
    state = {"n": 0}

    def grow(n):
        for _ in range(n):
            state["n"] += 1
            plan(
                scenario.sysadmin,
                scenario.tenant_a,
                date(2025, 1, 1).replace(day=state["n"] % 28 + 1, month=state["n"] // 28 + 1),
                vcpu="0.1",
                ram="0.2",
            )
            course = course_of(scenario.tenant_a, scenario.teacher, code=f"C{state['n']}")
            desktop = desktop_row(
                scenario.tenant_a, owner=scenario.student, course=course, state="stopped", power="stopped"
            )
            services.desktop_usage_record(desktop=desktop, at=datetime(2026, 10, 1, tzinfo=SHANGHAI))

    usage = {"from": "2026-10-01", "to": "2026-10-03"}
    # The user's roles (and whether they read bills or teach) are cached on the user after the first request.
    client.get("/api/v1/price-plans/")
    client.get("/api/v1/usage/", usage)
    assert_constant_queries(lambda: client.get("/api/v1/price-plans/"), grow)
    assert_constant_queries(lambda: client.get("/api/v1/usage/", usage), lambda n: grow(n))


def test_a_price_plan_takes_effect_at_a_whole_hour_or_a_dates_midnight(api, scenario):
    client = api.as_user(scenario.finance)
    body = {"tenant": "cs", "name": "调价", "rates": {"vcpu": "0.06"}}

    hour = client.post("/api/v1/price-plans/", {**body, "effective_from": "2026-11-16T14:00"}, format="json")
    day = client.post("/api/v1/price-plans/", {**body, "effective_from": "2026-12-01"}, format="json")
    utc = client.post("/api/v1/price-plans/", {**body, "effective_from": "2026-12-02T06:00:00Z"}, format="json")
    half = client.post("/api/v1/price-plans/", {**body, "effective_from": "2026-12-03T14:30"}, format="json")
    taken = client.post("/api/v1/price-plans/", {**body, "effective_from": "2026-11-16T06:00Z"}, format="json")

    assert hour.status_code == 201 and hour.json()["effective_from"] == "2026-11-16T14:00:00+08:00"
    assert day.status_code == 201 and day.json()["effective_from"] == "2026-12-01T00:00:00+08:00"
    assert utc.status_code == 201 and utc.json()["effective_from"] == "2026-12-02T14:00:00+08:00"
    assert half.status_code == 400 and half.json()["code"] == BillingError.EFFECTIVE_NOT_WHOLE_HOUR
    assert taken.status_code == 409 and taken.json()["code"] == BillingError.PRICE_PLAN_DATE_TAKEN  # the same instant


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/api/v1/invoices/", {"month": "2026/10"}, BillingError.MONTH_INVALID),
        ("/api/v1/usage/daily/", {"from": "2026-10-31", "to": "2026-10-01"}, BillingError.DATE_RANGE_REVERSED),
        ("/api/v1/usage/", {"from": "2025-01-01", "to": "2026-10-01"}, BillingError.DATE_RANGE_TOO_LONG),
    ],
)
def test_bad_filters_are_a_400_with_a_code(api, scenario, path, params, code):
    response = api.as_user(scenario.finance).get(path, params)
    assert response.status_code == 400 and response.json()["code"] == code


def test_the_running_estimate_of_this_month_counts_open_intervals_up_to_now_for_finance_only(api, scenario, course):
    from django.utils import timezone

    from billing import metering

    plan(scenario.sysadmin, scenario.university, date(2020, 1, 1), vcpu="1")
    desktop = desktop_row(scenario.tenant_a, owner=scenario.student, course=course, state="running", power="running")
    month_start = metering.local_midnight(timezone.localdate().replace(day=1))
    services.desktop_usage_record(desktop=desktop, at=month_start)  # still running: the interval is open
    floor = (timezone.now() - month_start).total_seconds() / 3600 * 2  # 2 vCPU x hours so far x 1 yuan

    finance = api.as_user(scenario.finance).get("/api/v1/usage/estimate/").json()
    ceiling = (timezone.now() - month_start).total_seconds() / 3600 * 2

    assert [(e["tenant"], e["month"]) for e in finance] == [("cs", timezone.localdate().strftime("%Y-%m"))]
    assert floor - 0.01 <= float(finance[0]["total"]) <= ceiling + 0.01
    for who in (scenario.teacher, scenario.student, scenario.stranger):
        assert api.as_user(who).get("/api/v1/usage/estimate/").json() == []

"""Auditor pages: search with filters, detail, CSV/XLSX export (audited), chain status, reports."""

import csv
import io

import pytest
from django.test import Client
from openpyxl import load_workbook

from audit.actions import Action
from audit.models import AuditEvent
from audit.services import event_record


@pytest.fixture
def events(scenario):
    mine = event_record(
        action=Action.DESKTOP_STARTED, actor=scenario.teacher, tenant=scenario.tenant_a, object_name="=cmd|x"
    )
    other = event_record(action=Action.DESKTOP_STARTED, actor=scenario.stranger, tenant=scenario.tenant_b)
    return mine, other


@pytest.mark.django_db
def test_the_auditor_searches_by_actor_and_sees_only_their_tenant(scenario, events, auditor_client):
    response = auditor_client.get("/audit/", {"actor": "a_teacher", "action": "desktop.started"})
    html = response.content.decode()
    assert response.status_code == 200
    assert f"#{events[0].id}" in html and f"#{events[1].id}" not in html
    assert 'id="audit-timeline-data"' in html
    assert AuditEvent.objects.filter(action=Action.AUDIT_SEARCHED, actor_username="a_auditor").exists()
    assert auditor_client.get(f"/audit/events/{events[1].id}/").status_code == 404
    detail = auditor_client.get(f"/audit/events/{events[0].id}/")
    assert 'data-testid="event-intact"' in detail.content.decode()


@pytest.mark.django_db
def test_an_empty_search_says_what_to_do(scenario, auditor_client):
    response = auditor_client.get("/audit/", {"actor": "nobody"})
    assert 'data-testid="empty-state"' in response.content.decode()
    bad = auditor_client.get("/audit/", {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert bad.status_code == 200 and "开始日期不能晚于结束日期" in bad.content.decode()


@pytest.mark.django_db
def test_csv_export_has_a_bom_defuses_formulas_and_is_audited(scenario, events, auditor_client):
    response = auditor_client.get("/audit/events/export.csv", {"actor": "a_teacher"})
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0][0] == "编号" and len(rows) == 2
    assert rows[1][10] == "'=cmd|x"
    export = AuditEvent.objects.get(action=Action.EXPORT_MADE)
    assert export.detail == {"count": 1, "filters": {"actor": "a_teacher"}, "format": "csv"}


@pytest.mark.django_db
def test_xlsx_export_opens_in_a_spreadsheet(scenario, events, auditor_client):
    response = auditor_client.get("/audit/events/export.xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][2] == "操作者"
    assert any(row[2] == "a_teacher" for row in values[1:])


@pytest.mark.django_db
def test_people_without_an_audit_role_get_a_403(scenario):
    client = Client()
    client.force_login(scenario.teacher)
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/events/export.csv").status_code == 403
    assert client.get("/audit/reports/").status_code == 403


@pytest.mark.django_db
def test_the_chain_page_verifies_on_demand(scenario, events, auditor_client):
    response = auditor_client.post("/audit/chain/")
    assert response.status_code == 302
    page = auditor_client.get("/audit/chain/").content.decode()
    assert "审计链完整" in page
    assert "<td>页面上手动校验</td>" in page and "<td>page</td>" not in page  # the source by its label


@pytest.mark.django_db
def test_the_report_page_generates_and_serves_a_pdf(scenario, auditor_client):
    response = auditor_client.post("/audit/reports/", {"level": "3"})
    assert response.status_code == 302
    detail = auditor_client.get(response.url)
    assert 'data-testid="report-rate"' in detail.content.decode()
    pdf = auditor_client.get(response.url + "pdf/")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


@pytest.mark.django_db
def test_other_apps_tests_can_log_in_a_verified_auditor(scenario):
    from audit.testing import force_login_verified

    client = Client()
    force_login_verified(client, scenario.auditadmin)
    assert client.get("/audit/").status_code == 200
    plain = Client()
    plain.force_login(scenario.auditadmin)
    assert plain.get("/audit/").status_code == 302


@pytest.mark.django_db
def test_the_security_admin_records_a_manual_finding_from_the_policy_page(scenario):
    from audit.testing import force_login_verified

    client = Client()
    force_login_verified(client, scenario.secadmin)
    page = client.get("/audit/policy/")
    assert page.status_code == 200 and "人工核查" in page.content.decode()
    response = client.post(
        "/audit/policy/manual/", {"check_id": "ip.services", "status": "partial", "evidence": "仍开放 8080 端口"}
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=Action.COMPLIANCE_ASSESSED, actor_username="p_secadmin").exists()
    auditor = Client()
    force_login_verified(auditor, scenario.auditor)
    refused = auditor.post("/audit/policy/manual/", {"check_id": "ip.services", "status": "conform", "evidence": "x"})
    assert refused.status_code == 403


def test_the_action_filter_is_grouped_and_roles_and_objects_read_in_chinese(auditor_client, scenario):
    from tenants.models import Membership

    membership = Membership.objects.filter(user=scenario.teacher).first()
    event_record(actor=scenario.teacher, action=Action.ROLE_GRANTED, target=membership)

    html = auditor_client.get("/audit/").content.decode()

    assert '<optgroup label="登录与账号安全">' in html and '<optgroup label="计费">' in html
    assert ">教师<" in html  # the role column shows the label, not "teacher"
    assert '<span class="text-muted">成员</span>' in html  # the object's kind, by its label


@pytest.mark.django_db
def test_the_chart_is_kept_for_the_same_view_and_not_drawn_for_a_page_of_rows(scenario, events, auditor_client):
    """The chart's grouped query runs once for the same scope and filters (TIMELINE_SECONDS), a page of rows
    asked by htmx draws no chart, and another filter (like another scope: both are in the SQL) is another chart."""
    from audit import selectors

    first = auditor_client.get("/audit/")
    assert 'id="audit-timeline-data"' in first.content.decode()
    charted = selectors.event_list_for(scenario.auditor)
    rows = charted.order_by().values("id")
    before = selectors.timeline(charted)
    event_record(action=Action.DESKTOP_STARTED, actor=scenario.teacher, tenant=scenario.tenant_a)
    assert selectors.timeline(charted) == before  # kept: the new event shows in the chart within seconds
    assert sum(day["success"] for day in before) + 1 == rows.count()
    partial = auditor_client.get("/audit/", {"page": 1}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="event-results")
    assert partial.status_code == 200 and "audit-timeline-data" not in partial.content.decode()
    assert before
    nobody = selectors.event_list_for(scenario.auditor).filter(actor_username="nobody")
    assert selectors.timeline(nobody) == []  # another filter, another chart

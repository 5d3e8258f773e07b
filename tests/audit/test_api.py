"""The audit API: tenant scoping, read-only auditors, compliance reports, constant query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.actions import Action
from audit.models import AuditEvent
from audit.services import event_record
from common.errors import ErrorCode


@pytest.fixture
def events(scenario):
    a = event_record(
        action=Action.DESKTOP_STARTED, actor=scenario.teacher, tenant=scenario.tenant_a, object_name="desk-a"
    )
    b = event_record(
        action=Action.DESKTOP_STARTED, actor=scenario.stranger, tenant=scenario.tenant_b, object_name="desk-b"
    )
    platform = event_record(action=Action.POLICY_CHANGED, actor=scenario.secadmin)
    return a, b, platform


def _ids(response):
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.django_db
def test_a_tenant_auditor_sees_their_tenant_and_the_audit_admin_everything(scenario, events, api):
    a, b, platform = events
    assert _ids(api.as_user(scenario.auditor).get("/api/v1/audit-events/")) >= {a.id}
    assert b.id not in _ids(api.as_user(scenario.auditor).get("/api/v1/audit-events/"))
    assert platform.id not in _ids(api.as_user(scenario.auditor).get("/api/v1/audit-events/"))
    assert {a.id, b.id, platform.id} <= _ids(api.as_user(scenario.auditadmin).get("/api/v1/audit-events/"))


@pytest.mark.django_db
def test_people_without_an_audit_role_see_nothing(scenario, events, api):
    assert _ids(api.as_user(scenario.teacher).get("/api/v1/audit-events/")) == set()
    assert api.as_user(scenario.tenant_admin).get(f"/api/v1/audit-events/{events[0].id}/").status_code == 404


@pytest.mark.django_db
def test_another_tenants_event_is_a_404(scenario, events, api):
    response = api.as_user(scenario.auditor).get(f"/api/v1/audit-events/{events[1].id}/")
    assert response.status_code == 404 and response.json()["code"] == ErrorCode.NOT_FOUND


@pytest.mark.django_db
def test_filters_narrow_the_list_and_the_search_is_audited(scenario, events, api):
    response = api.as_user(scenario.auditadmin).get(
        "/api/v1/audit-events/", {"actor": "a_teacher", "action": "desktop.started"}
    )
    assert _ids(response) == {events[0].id}
    searched = AuditEvent.objects.filter(action=Action.AUDIT_SEARCHED, actor_username="p_auditadmin").get()
    assert searched.detail["filters"]["actor"] == "a_teacher"


@pytest.mark.django_db
def test_auditors_cannot_write(scenario, events, api):
    client = api.as_user(scenario.auditor)
    assert client.post("/api/v1/audit-events/", {}, format="json").status_code == 403
    assert client.delete(f"/api/v1/audit-events/{events[0].id}/").status_code == 403


@pytest.mark.django_db
def test_an_auditor_generates_a_report_and_downloads_its_pdf(scenario, api):
    client = api.as_user(scenario.auditor)
    created = client.post("/api/v1/compliance-reports/", {"level": 2}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["level"] == 2 and body["results"]
    pdf = client.get(f"/api/v1/compliance-reports/{body['id']}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert (
        api.as_user(scenario.teacher).post("/api/v1/compliance-reports/", {"level": 2}, format="json").status_code
        == 403
    )
    assert api.as_user(scenario.stranger).get(f"/api/v1/compliance-reports/{body['id']}/").status_code in (403, 404)
    bad = api.as_user(scenario.auditor).post("/api/v1/compliance-reports/", {"level": 5}, format="json")
    assert bad.status_code == 400


@pytest.mark.django_db
def test_the_event_list_costs_the_same_queries_for_3_and_30_rows(scenario, api):
    client = api.as_user(scenario.auditadmin)

    def count_for(n):
        while AuditEvent.objects.count() < n:
            event_record(action=Action.DESKTOP_STARTED, actor=scenario.teacher, tenant=scenario.tenant_a)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/audit-events/").status_code == 200
        return len(ctx)

    client.get("/api/v1/audit-events/")  # warm the per-user role cache
    assert count_for(3) == count_for(30)

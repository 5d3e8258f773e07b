"""Objects of tenant `cs` for the API isolation test (tests/api/test_isolation.py)."""

from audit.actions import Action


def _event(scenario):
    from audit.services import event_record

    return {"id": event_record(action=Action.DESKTOP_STARTED, actor=scenario.teacher, tenant=scenario.tenant_a).pk}


def _report(scenario):
    from audit.services import compliance_report_create

    return {"id": compliance_report_create(actor=scenario.auditor, level=2).pk}


MAKERS = {
    "/api/v1/audit-events/{id}/": _event,
    "/api/v1/compliance-reports/{id}/": _report,
    "/api/v1/compliance-reports/{id}/pdf/": _report,
}

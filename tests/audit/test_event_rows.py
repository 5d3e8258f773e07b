"""The audit log's rows (audit/rows.py event_rows) are what the template's per-row tags made of each event:
the same HTML for every role, action, object type and result, in both languages."""

import datetime
from pathlib import Path

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

from audit import chain, selectors
from audit.actions import Action
from audit.models import AuditEvent
from common.paging import Paginator

# The rows template before audit.rows.event_rows (audit/_event_rows.html), kept as the reference.
_BEFORE = (Path(__file__).parent / "event_rows_before.html").read_text()


@pytest.fixture
def varied(scenario):
    now = timezone.now()
    kinds = [
        ("student", str(Action.DESKTOP_STARTED), "compute.desktop", "success", "10.0.0.7"),
        ("teacher", str(Action.LOGIN_FAILED), "tenants.user", "failure", ""),
        ("", "no.such_action", "no.such_model", "success", "::1"),
        ("no-such-role", str(Action.LOGIN_SUCCEEDED), "", "failure", "10.0.0.8"),
    ]
    chain.append_many(
        [
            AuditEvent(
                occurred_at=now - datetime.timedelta(hours=n * 7, seconds=n),
                actor_username="" if n % 5 == 0 else f"user-{n}",
                actor_role=role,
                tenant_slug=scenario.tenant_a.slug,
                source_ip=ip,
                action=action,
                object_type=object_type,
                object_name=("长" * 45 if n % 3 == 0 else f'obj <"&> {n}'),
                result=result,
            )
            for n, (role, action, object_type, result, ip) in enumerate(kinds * 5)
        ]
    )


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_rows_are_what_the_per_row_tags_made(scenario, varied, auditor_client, language):
    auditor_client.cookies["django_language"] = language
    rows = auditor_client.get("/audit/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="event-results").content.decode()
    page = auditor_client.get("/audit/").content.decode()

    events = selectors.event_list_for(scenario.auditor).order_by("-occurred_at", "-id")
    assert events.count() > 20
    with translation.override(language):
        before = Template(_BEFORE).render(Context({"page": Paginator(events, 50).get_page(1), "querystring": ""}))
    assert rows == before
    assert f'<div id="event-results">{before}</div>' in page

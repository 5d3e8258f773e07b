"""The audit log's rows (audit/_event_rows.html): each row's HTML written once per page by ``format_html``,
which escapes every value that is not already HTML, instead of ~12 tags a row (half the page's time at
50 rows). tests/audit/test_event_rows.py renders the per-row template these replaced and compares."""

from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from audit.models import AuditEvent
from common.links import pk_url

# What a row of the event list shows (the rest of an event, its detail and hashes, stays unread).
LISTED = (
    "id",
    "occurred_at",
    "actor_username",
    "actor_role",
    "tenant_slug",
    "source_ip",
    "action",
    "object_type",
    "object_name",
    "result",
)


# One row of audit/_event_rows.html's table, as its per-row tags wrote it (tests/audit/test_event_rows.py
# renders the old template as the reference): 50 rows of ~12 tags cost the page half its time.
_ROW = (
    "\n  <tr>\n"
    '    <td class="text-nowrap">{when}</td>\n'
    "    <td>{actor}</td>\n"
    '    <td class="small">{role}</td>\n'
    "    <td>{tenant}</td>\n"
    '    <td class="font-monospace small">{ip}</td>\n'
    "    <td>{action}</td>\n"
    '    <td class="small">{object}</td>\n'
    '    <td><span class="badge text-bg-{badge}">{result}</span></td>\n'
    '    <td><a href="{url}" aria-label="{detail} #{id}">#{id}</a></td>\n'
    "  </tr>\n  "
)


def event_rows(events) -> list:
    """Each event with its row's HTML (``row_html``), each label worked out once per page. ``format_html``
    escapes every value that is not already HTML (a label escaped once for the page, the object's span)."""
    detail_url = pk_url("audit:event_detail")
    detail = _("事件详情")
    results = {value: escape(str(label)) for value, label in AuditEvent.Result.choices}
    labels: dict[tuple[str, str], str] = {}
    rows = list(events)
    for event in rows:
        for kind, code in (("role", event.actor_role), ("action", event.action), ("object", event.object_type)):
            if (kind, code) not in labels:
                labels[kind, code] = escape(str(_event_label(event, kind)))
        name = Truncator(event.object_name).chars(40)
        if event.object_type:
            name = format_html('<span class="text-muted">{}</span> {}', labels["object", event.object_type], name)
        event.row_html = format_html(
            _ROW,
            when=_when(event.occurred_at),
            actor=event.actor_username or "—",
            role=labels["role", event.actor_role],
            tenant=event.tenant_slug or "—",
            ip=event.source_ip or "—",
            action=labels["action", event.action],
            object=name,
            badge="success" if event.result == "success" else "danger",
            result=results.get(event.result) or event.result,
            url=detail_url(event.pk),
            detail=detail,
            id=int(event.pk),
        )
    return rows


def _when(instant) -> str:
    """The date filter's "Y-m-d H:i:s" of an instant, in the current time zone."""
    when = timezone.template_localtime(instant)
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d} {when.hour:02d}:{when.minute:02d}:{when.second:02d}"


def _event_label(event: AuditEvent, kind: str) -> str:
    if kind == "role":
        return event.role_label
    return event.action_label if kind == "action" else event.object_type_label

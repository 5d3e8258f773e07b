"""The desktop list's rows (compute/_desktop_rows.html): read and worked out once per page.

A page of 20 desktops read with ``select_related`` built ~140 model instances (tenant, owner, course,
flavor, image version, image, endpoint for every row) of which a row shows four columns, and its
template spent about 0.5 ms a row on tags: ``{% url %}`` three times, ``get_state_display``,
``{% blocktranslate %}``, ``{% translate %}`` and two includes. The rows are now read with what they
show of other tables as annotated columns, and each row's HTML is written here (``_ROW``, filled by
``format_html``, which escapes every value that is not already HTML), with one
``reverse()`` per URL name for the whole page (``common.links.pk_url``) and each word translated once.
The list page, a row's 3-s poll and a row after an action all read and dress rows this way.
"""

from django.db.models import F, QuerySet
from django.template.loader import render_to_string
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from common.links import pk_url
from common.units import memory_label
from compute.models import Desktop
from tenants.models import Tenant, User

# The states whose row polls itself and shows a spinner (migrating does not: as before).
POLLED = frozenset(("requested", "provisioning", "starting", "stopping", "rebooting", "busy", "deleting"))

# What a row shows of the desktop's own columns (the rest stay unread).
_COLUMNS = ("id", "name", "vm_name", "tenant", "owner", "course", "vcpus", "memory_mib", "disk_gib", "state")


def desktop_rows(queryset: QuerySet) -> QuerySet:
    """``queryset`` read as the list's rows: no related instances, their shown columns annotated."""
    return (
        queryset.select_related(None)
        .only(*_COLUMNS, "error_reason")
        .annotate(
            owner_display_name=F("owner__display_name"),
            owner_first_name=F("owner__first_name"),
            owner_last_name=F("owner__last_name"),
            owner_username=F("owner__username"),
            tenant_name_zh=F("tenant__name_zh"),
            tenant_name_en=F("tenant__name_en"),
            course_code=F("course__code"),
        )
    )


# One row of the list (compute/_desktop_rows.html), as the per-row template wrote it (tests/compute/
# test_desktop_rows.py renders that template as the reference): a row of ~25 tags cost a page of 20
# desktops about as much as the rest of the page.
_ROW = (
    '<tr id="desktop-row-{pk}"{poll}>\n'
    '  <td><a href="{detail_url}">{name}</a><div class="small text-muted">{vm_name}</div></td>\n'
    "  <td>{owner}</td>\n"
    "  <td>{tenant}{course}</td>\n"
    "  <td>{vcpus} vCPU · {memory} · {disk_gib} GiB</td>\n"
    '  <td><span id="desktop-state-{pk}" class="badge {badge}" data-testid="desktop-state" data-state="{state}">'
    "{spinner}{state_label}</span>\n{error}</td>\n"
    '  <td class="text-end text-nowrap">\n'
    "    {power}\n"
    '    <a class="btn btn-sm btn-outline-primary" href="{detail_url}">{detail_text}</a>\n'
    "  </td>\n"
    "</tr>\n"
)
_POLL = ' hx-get="{}" hx-trigger="every 3s" hx-swap="outerHTML"'
_COURSE = '<div class="small text-muted">{}</div>'
_SPINNER = '<span class="spinner-border spinner-border-sm me-1" aria-hidden="true"></span>'
_POWER = (
    '\n    <button class="btn btn-sm btn-outline-{colour}" hx-post="{url}" hx-target="#desktop-row-{pk}" '
    'hx-swap="outerHTML" aria-label="{label}"><i class="bi bi-{icon}-fill" aria-hidden="true"></i> {text}'
    "</button>\n    "
)
_BADGES = {"running": "text-bg-success", "stopped": "text-bg-secondary", "error": "text-bg-danger"}


def state_badge(state: str) -> str:
    """Running green, stopped grey, in error red, deleted light; every state on the way somewhere yellow."""
    return _BADGES.get(state, "text-bg-light" if state == "deleted" else "text-bg-warning")


def dress(desktops) -> list:
    """Each desktop (read by ``desktop_rows``) with its row's HTML (``row_html``); the desktops, as a list.

    ``format_html`` escapes every value as the template did; what is already HTML (a fragment, a label
    escaped once for the page) is a SafeString. The words are translated once."""
    desktops = list(desktops)
    urls = {
        "detail": pk_url("compute:desktop-detail"),
        "row": pk_url("compute:desktop-row"),
        "start": pk_url("compute:desktop-action", "start"),
        "stop": pk_url("compute:desktop-action", "stop"),
    }
    labels = {value: escape(str(label)) for value, label in Desktop.State.choices}
    # As {% translate %} wrote them: trusted text, not escaped.
    words = {"start": mark_safe(_("开机")), "stop": mark_safe(_("关机")), "detail": mark_safe(_("详情"))}  # noqa: S308
    # As {% blocktranslate %} writes them: the translation as it is, the name escaped.
    power_labels = {"start": _("开机 %(name)s"), "stop": _("关机 %(name)s")}
    for desktop in desktops:
        desktop.row_html = _row(desktop, urls, labels, words, power_labels)
    return desktops


def _row(desktop, urls: dict, labels: dict, words: dict, power_labels: dict) -> SafeString:
    pk, state, name = int(desktop.pk), desktop.state, escape(desktop.name)
    polls = state in POLLED
    owner = ""  # a spare seat's desktop has no owner
    if desktop.owner_id:
        owner = User.full_name_of(
            desktop.owner_display_name, desktop.owner_first_name, desktop.owner_last_name, desktop.owner_username
        )
    course = format_html(_COURSE, desktop.course_code or "") if desktop.course_id else ""
    return format_html(
        _ROW,
        pk=pk,
        poll=format_html(_POLL, urls["row"](pk)) if polls else "",
        detail_url=urls["detail"](pk),
        name=name,
        vm_name=desktop.vm_name,
        owner=owner or "—",
        tenant=Tenant.name_of(desktop.tenant_name_zh, desktop.tenant_name_en),
        course=course,
        vcpus=desktop.vcpus,
        memory=memory_label(desktop.memory_mib),
        disk_gib=desktop.disk_gib,
        badge=state_badge(state),
        state=state,
        spinner=mark_safe(_SPINNER) if polls else "",  # noqa: S308 (a constant)
        state_label=labels.get(state) or state,
        error=_error(desktop) if state == Desktop.State.ERROR else "",
        power=_power(pk, state, name, urls, words, power_labels),
        detail_text=words["detail"],
    )


def _power(pk: int, state: str, name: SafeString, urls: dict, words: dict, power_labels: dict) -> SafeString | str:
    """The start or stop button of a stopped or running desktop (``name`` escaped)."""
    if state == Desktop.State.STOPPED:
        verb, colour, icon = "start", "success", "play"
    elif state == Desktop.State.RUNNING:
        verb, colour, icon = "stop", "secondary", "stop"
    else:
        return ""
    # As {% blocktranslate %} writes it: the translation as it is, the (escaped) name put in.
    label = mark_safe(power_labels[verb] % {"name": name})  # noqa: S308
    return format_html(_POWER, colour=colour, url=urls[verb](pk), pk=pk, label=label, icon=icon, text=words[verb])


def _error(desktop) -> SafeString:
    text = render_to_string("portal/_error.html", {"text": desktop.error_reason})  # a SafeString
    return format_html('<div class="small" style="max-width: 18rem">{}</div>', text)

"""The desktop list's rows (compute/_desktop_rows.html): read and worked out once per page.

A page of 20 desktops read with ``select_related`` built ~140 model instances (tenant, owner, course,
flavor, image version, image, endpoint for every row) of which a row shows four columns, and its
template spent about 0.5 ms a row on tags: ``{% url %}`` three times, ``get_state_display``,
``{% blocktranslate %}``, ``{% translate %}`` and two includes. The rows are now read with what they
show of other tables as annotated columns, and the URLs and labels are set on each row
here, with one ``reverse()`` per URL name for the whole page (``common.links.pk_url``).
The list page, a row's 3-s poll and a row after an action all read and dress rows this way.
"""

from django.db.models import F, QuerySet
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from common.links import pk_url
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


def dress(desktops) -> list:
    """Set on each desktop (read by ``desktop_rows``) what its row shows; the desktops, as a list."""
    desktops = list(desktops)
    detail_url = pk_url("compute:desktop-detail")
    row_url = pk_url("compute:desktop-row")
    start_url = pk_url("compute:desktop-action", "start")
    stop_url = pk_url("compute:desktop-action", "stop")
    labels = {value: str(label) for value, label in Desktop.State.choices}
    # As {% blocktranslate %} writes them: the translation as it is, the name escaped.
    start_label, stop_label = _("开机 %(name)s"), _("关机 %(name)s")
    for desktop in desktops:
        pk, state = desktop.pk, desktop.state
        desktop.detail_url = detail_url(pk)
        desktop.polls = state in POLLED
        desktop.row_url = row_url(pk) if desktop.polls else ""
        desktop.state_label = labels.get(state, state)
        desktop.owner_name = User.full_name_of(
            desktop.owner_display_name, desktop.owner_first_name, desktop.owner_last_name, desktop.owner_username
        )
        desktop.tenant_name = Tenant.name_of(desktop.tenant_name_zh, desktop.tenant_name_en)
        name = {"name": conditional_escape(desktop.name)}
        if state == Desktop.State.STOPPED:
            desktop.power_url, desktop.power_label = start_url(pk), mark_safe(start_label % name)  # noqa: S308
        elif state == Desktop.State.RUNNING:
            desktop.power_url, desktop.power_label = stop_url(pk), mark_safe(stop_label % name)  # noqa: S308
    return desktops

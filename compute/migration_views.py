"""HTML pages of migration and maintenance (system admin): a desktop's migrate page (host picker with
placement's choice pre-selected, progress, cancel), and a host's maintenance switch with its evacuation."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from common.ui import service_call
from compute import selectors, services
from compute.models import Host


def _admin_only(request) -> None:
    if not selectors.is_system_admin(request.user):
        raise Http404


@login_required
@require_http_methods(["GET", "POST"])
def desktop_migrate(request, pk):
    _admin_only(request)
    desktop = get_object_or_404(selectors.desktop_list_for(request.user).select_related("host", "endpoint"), pk=pk)
    if request.method == "POST":
        host = None
        if request.POST.get("host"):
            host = get_object_or_404(Host, pk=request.POST["host"])
        response = service_call(
            request,
            lambda: services.desktop_migrate(actor=request.user, desktop=desktop, host=host),
            success=lambda m: _("已开始将桌面迁移到主机“%(host)s”。") % {"host": m.target_name},
            next=request.path,
        )
        if response is not None:
            return response
    candidates = services.migration_candidates(desktop) if desktop.is_live else []
    migrations = selectors.desktop_migrations(desktop)
    return render(
        request,
        "compute/desktop_migrate.html",
        {
            "desktop": desktop,
            "candidates": candidates,
            "migrations": migrations,
            "active": any(not m.finished for m in migrations),
        },
    )


@login_required
@require_POST
def migration_cancel(request, pk):
    _admin_only(request)
    migration = get_object_or_404(selectors.migrations_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.migration_cancel(actor=request.user, migration=migration),
        success=_("已请求取消迁移；桌面将留在源主机上。"),
        next=reverse("compute:desktop-migrate", args=[migration.desktop_id]),
    )


@login_required
@require_POST
def host_maintenance(request, pk):
    try:
        host = selectors.host_get_for(request.user, pk=pk)
    except Host.DoesNotExist as exc:
        raise Http404 from exc
    on = request.POST.get("mode") == "on"
    return service_call(
        request,
        lambda: services.host_maintenance(actor=request.user, name=host.endpoint.name, on=on),
        success=_("主机已进入维护状态，正在迁走其上的桌面。") if on else _("主机已退出维护状态。"),
        next=reverse("compute:host-detail", args=[host.pk]),
    )

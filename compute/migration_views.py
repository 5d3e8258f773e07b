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
from compute.models import DrsPolicy, Host


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


@login_required
@require_http_methods(["GET", "POST"])
def drs(request):
    """Each cluster's load balancing: its settings, its hosts' loads and what it would move now."""
    _admin_only(request)
    from compute import drs as balancing
    from compute.models import Cluster

    clusters = list(Cluster.objects.select_related("site").order_by("site__slug", "name"))
    if request.method == "POST":
        cluster = get_object_or_404(Cluster, pk=request.POST.get("cluster"))
        response = service_call(
            request,
            lambda: balancing.drs_policy_set(
                actor=request.user,
                cluster=cluster,
                mode=request.POST.get("mode", ""),
                threshold_percent=_int(request.POST.get("threshold_percent")),
                max_moves=_int(request.POST.get("max_moves")),
                class_grace_minutes=_int(request.POST.get("class_grace_minutes")),
            ),
            success=_("负载均衡设置已保存。"),
            next=reverse("compute:drs"),
        )
        if response is not None:
            return response
    rows = []
    for cluster in clusters:
        policy = balancing.policy_of(cluster)
        rows.append(
            {
                "cluster": cluster,
                "policy": policy,
                "loads": balancing.host_loads(cluster),
                "recommendations": balancing.drs_recommendations(cluster, policy),
            }
        )
    return render(request, "compute/drs.html", {"rows": rows, "modes": DrsPolicy.Mode.choices})


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0

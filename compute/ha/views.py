"""HA's pages (system admin): the clusters' HA settings, and on a host's page its BMC and the clear action."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from common.ui import service_call
from compute import selectors as compute_selectors
from compute.ha import selectors, services
from compute.ha.forms import BmcForm, ClearForm, HaSettingsForm
from compute.models import Host


def _admin_only(request) -> None:
    if not compute_selectors.is_system_admin(request.user):
        raise Http404


@login_required
@require_http_methods(["GET", "POST"])
def ha_clusters(request, pk=None):
    """Every cluster's HA: on/off, detection time, fencing, its hosts' state; with ``pk`` the one being edited."""
    _admin_only(request)
    clusters = selectors.ha_clusters_for(request.user)
    editing = get_object_or_404(clusters, pk=pk) if pk is not None else None
    form = None
    if editing is not None:
        ha = selectors.ha_of(editing)
        initial = {"enabled": ha.enabled, "detection_seconds": ha.detection_seconds, "fencing": ha.fencing}
        form = HaSettingsForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            done = service_call(
                request,
                lambda: services.ha_settings_update(actor=request.user, cluster=editing, **form.cleaned_data),
                success=_("高可用设置已保存。"),
                next=reverse("compute:ha-clusters"),
                form=form,
            )
            if done:
                return done
    rows = [(c, selectors.ha_of(c), selectors.shared_storage(c)) for c in clusters]
    return render(request, "compute/ha_clusters.html", {"rows": rows, "form": form, "editing": editing})


def _host(request, pk) -> Host:
    _admin_only(request)
    return get_object_or_404(Host.objects.select_related("endpoint"), pk=pk)


@login_required
@require_POST
def host_bmc(request, pk):
    host = _host(request, pk)
    form = BmcForm(request.POST)
    if not form.is_valid():
        return redirect("compute:host-detail", pk)
    return service_call(
        request,
        lambda: services.host_bmc_set(actor=request.user, host=host, **form.cleaned_data),
        success=_("BMC 已保存。"),
        next=reverse("compute:host-detail", args=[pk]),
    )


@login_required
@require_POST
def host_clear(request, pk):
    host = _host(request, pk)
    if not ClearForm(request.POST).is_valid():
        from django.contrib import messages

        messages.error(request, _("请先勾选确认。"))
        return redirect("compute:host-detail", pk)
    return service_call(
        request,
        lambda: services.host_ha_clear(actor=request.user, host=host),
        success=_("主机已解除隔离，重新参与放置。"),
        next=reverse("compute:host-detail", args=[pk]),
    )


def host_context(host: Host) -> dict:
    """What the host page shows of HA (hosts_views.host_detail adds it)."""
    initial = {"address": host.bmc_address, "port": host.bmc_port, "username": host.bmc_username}
    return {
        "ha_incidents": selectors.host_incidents(host),
        "bmc_form": BmcForm(initial=initial),
        "clear_form": ClearForm(),
    }

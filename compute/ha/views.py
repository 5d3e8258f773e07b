"""HA's pages (system admin): the clusters' HA settings, and on a host's page its BMC and the clear action;
on a desktop's page (its admins) the desktop's HA flag."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from common.ui import service_call
from compute import selectors as compute_selectors
from compute.ha import selectors, services
from compute.ha.forms import BmcForm, ClearForm, DesktopHaForm, HaSettingsForm
from compute.models import Desktop, Host


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


def desktop_ha_visible(user, desktop: Desktop) -> bool:
    """The desktop's HA flag is shown (and changed) on its page by its admins: system or tenant admins."""
    return selectors.ha_flag_settable_by(user, desktop)


def desktop_context(user, desktop: Desktop) -> dict:
    """What the desktop page shows of HA (views.desktop_detail adds it): nothing unless the user is its admin."""
    if not desktop_ha_visible(user, desktop):
        return {}
    from compute.ha.restart import cluster_has_shared_storage, ha_enabled

    shared = cluster_has_shared_storage(desktop.endpoint.cluster_id)
    return {
        "ha_shown": True,
        "ha_effective": ha_enabled(desktop, shared=shared),
        "ha_cluster_default": shared,
        "ha_form": DesktopHaForm(initial=DesktopHaForm.initial_for(desktop.ha_enabled)),
    }


@login_required
@require_POST
def desktop_ha(request, pk):
    """Set the desktop's HA flag (no confirmation: it changes nothing until its host fails)."""
    desktop = get_object_or_404(compute_selectors.desktop_list_for(request.user).select_related("tenant"), pk=pk)
    if not desktop_ha_visible(request.user, desktop):
        raise Http404
    form = DesktopHaForm(request.POST)
    back = reverse("compute:desktop-detail", args=[pk])
    if not form.is_valid():
        return redirect(back)
    return service_call(
        request,
        lambda: services.desktop_ha_set(actor=request.user, desktop=desktop, enabled=form.enabled()),
        success=_("桌面的高可用设置已保存。"),
        next=back,
    )

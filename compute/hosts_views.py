"""HTML pages of the compute nodes (system admin): hosts per site with capacity bars, a host with its desktops."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from common.ui import service_call
from compute import selectors, services
from compute.models import Host


@login_required
@require_GET
def host_list(request):
    if not selectors.is_system_admin(request.user):
        raise Http404
    return render(request, "compute/host_list.html", {"sites": selectors.host_list_by_site(request.user)})


@login_required
@require_GET
def host_detail(request, pk):
    from compute.ha.views import host_context

    host = _host_or_404(request, pk)
    context = {
        "host": host,
        "desktops": selectors.host_desktops(host),
        "events": selectors.host_events(host),
        **host_context(host),
    }
    if host.state == Host.State.MAINTENANCE:
        context["evacuation"] = services.evacuation_status(host)
    return render(request, "compute/host_detail.html", context)


def _host_or_404(request, pk) -> Host:
    try:
        return selectors.host_get_for(request.user, pk=pk)
    except Host.DoesNotExist as exc:
        raise Http404 from exc


@login_required
@require_POST
def host_network_node(request, pk):
    """Make the host its cluster's (or site's) network node, or no longer one (``on`` = 1 or 0)."""
    host = _host_or_404(request, pk)
    on = request.POST.get("on") == "1"
    return service_call(
        request,
        lambda: services.host_network_node_set(actor=request.user, name=host.endpoint.name, on=on),
        success=_("已设为网络节点。") if on else _("已取消网络节点。"),
        next=reverse("compute:host-detail", args=[host.pk]),
    )


@login_required
@require_POST
def host_data_address(request, pk):
    """The host page's form: set, change or clear the host's data (tunnel) address."""
    host = _host_or_404(request, pk)
    return service_call(
        request,
        lambda: services.host_data_address_set(
            actor=request.user, name=host.endpoint.name, data_address=request.POST.get("data_address", "")
        ),
        success=_("数据地址已保存，主机上的网络将随之更新。"),
        next=reverse("compute:host-detail", args=[host.pk]),
    )

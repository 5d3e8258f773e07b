"""HTML pages of the compute nodes (system admin): hosts per site with capacity bars, a host with its desktops."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from compute import selectors
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
    try:
        host = selectors.host_get_for(request.user, pk=pk)
    except Host.DoesNotExist as exc:
        raise Http404 from exc
    from compute.ha.views import host_context

    context = {"host": host, "desktops": selectors.host_desktops(host), **host_context(host)}
    return render(request, "compute/host_detail.html", context)

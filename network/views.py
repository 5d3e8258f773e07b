"""HTML pages of network: networks with subnets and addresses, security groups and rules, elastic IPs.

Same services as the API; reads through network.selectors (another tenant's object is a 404).
"""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from common.paging import Paginator
from common.ui import service_call
from network import rules, selectors, services
from network.forms import (
    AddressPoolForm,
    NetworkForm,
    ReserveForm,
    RuleForm,
    SecurityGroupForm,
    SegmentForm,
    SubnetForm,
)
from network.models import SecurityGroupRule, Subnet
from tenants.models import Tenant
from tenants.roles import TenantRole
from tenants.selectors import tenants_with_role

PAGE_SIZE = 25


def _managed_tenants(user):
    if rules.is_system_admin(user):
        return Tenant.objects.filter(is_active=True).order_by("path")
    return tenants_with_role(user, TenantRole.TENANT_ADMIN).order_by("path")


def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


@login_required
def network_list(request):
    user = request.user
    search = request.GET.get("q", "").strip()[:64]
    subnets = Subnet.objects.annotate(used=Count("addresses")).order_by("id")
    queryset = (
        selectors.network_list_for(user, search=search)
        .prefetch_related(None)
        .prefetch_related(Prefetch("subnets", queryset=subnets))
        .order_by("tenant__slug", "name", "id")
    )
    managed = list(_managed_tenants(user))
    form = None
    if managed or rules.is_system_admin(user):
        segments = list(selectors.segment_list_for(user).order_by("site", "kind", "name"))
        form = NetworkForm(
            request.POST or None,
            tenants=managed,
            allow_shared=rules.is_system_admin(user),
            segments=segments,
            prefix="net",
        )
        if request.method == "POST" and form.is_valid():
            values = form.cleaned_data
            tenant = next((t for t in managed if t.slug == values["tenant"]), None)
            segment = next((s for s in segments if str(s.pk) == values["platform_segment"]), None)
            done = service_call(
                request,
                lambda: services.network_create(
                    actor=user,
                    tenant=tenant,
                    name=values["name"],
                    kind=values["kind"],
                    segment_type=values["segment_type"],
                    segment_id=values["segment_id"],
                    platform_segment=segment,
                    bridge=values.get("bridge", ""),
                    cidr=values["cidr"],
                    gateway=values["gateway"],
                    dns_servers=values["dns_servers"],
                ),
                success=lambda network: _("网络“%(name)s”已创建。") % {"name": network.name},
                next=lambda network: reverse("network:detail", args=[network.pk]),
                form=form,
            )
            if done:
                return done
    page = _page(request, queryset)
    for network in page.object_list:
        network.usage = [(s, selectors.subnet_usage(s)) for s in network.subnets.all()]
    context = {
        "page": page,
        "form": form,
        "q": search,
        "section": "networks",
        "pools": selectors.address_pool_list_for(user).order_by("name") if form else (),
    }
    return render(request, "network/network_list.html", context)


@login_required
def network_detail(request, pk: int):
    user = request.user
    network = get_object_or_404(selectors.network_list_for(user), pk=pk)
    can_manage = rules.can_manage_networks(user, network.tenant)
    subnets = list(selectors.subnet_list_for(user, network_id=network.pk).order_by("id"))
    subnet_form = SubnetForm(prefix="subnet") if can_manage else None
    reserve_form = ReserveForm(prefix="reserve", subnets=subnets) if can_manage else None
    here, done = reverse("network:detail", args=[network.pk]), None
    if request.method == "POST" and can_manage and "subnet-cidr" in request.POST:
        subnet_form = SubnetForm(request.POST, prefix="subnet")
        if subnet_form.is_valid():
            done = service_call(
                request,
                lambda: services.subnet_create(actor=user, network=network, **subnet_form.cleaned_data),
                success=_("子网已添加。"),
                next=here,
                back=None,
            )
    elif request.method == "POST" and can_manage and "reserve-ip" in request.POST:
        reserve_form = ReserveForm(request.POST, prefix="reserve", subnets=subnets)
        if reserve_form.is_valid():
            values = reserve_form.cleaned_data
            subnet = next(s for s in subnets if str(s.pk) == values["subnet"])
            done = service_call(
                request,
                lambda: services.address_reserve(
                    actor=user, subnet=subnet, ip=values["ip"], mac=values["mac"], hostname=values["hostname"]
                ),
                success=_("地址已保留。"),
                next=here,
                back=None,
            )
    if done:
        return done
    addresses = _page(request, selectors.address_list_for(user, network_id=network.pk).order_by("subnet_id", "ip_int"))
    context = {
        "network": network,
        "subnets": [(s, selectors.subnet_usage(s)) for s in subnets],
        "page": addresses,
        # vCenter has no DHCP service: say so for the network rather than leave the bindings silent.
        "on_vcenter": selectors.network_has_vcenter_nics(network),
        "can_manage": can_manage,
        "subnet_form": subnet_form,
        "reserve_form": reserve_form,
        "section": "networks",
    }
    return render(request, "network/network_detail.html", context)


@login_required
@require_POST
def network_delete(request, pk: int):
    network = get_object_or_404(selectors.network_list_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.network_delete(actor=request.user, network=network),
        success=_("网络已删除。"),
        next="network:list",
        back=reverse("network:detail", args=[pk]),
    )


@login_required
@require_POST
def address_unreserve(request, pk: int):
    address = get_object_or_404(selectors.address_list_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.address_unreserve(actor=request.user, address=address),
        success=_("保留地址已释放。"),
        next=reverse("network:detail", args=[address.subnet.network_id]),
    )


@login_required
def group_list(request):
    user = request.user
    groups = selectors.security_group_list_for(user).order_by("tenant__slug", "-is_default", "name")
    managed = list(_managed_tenants(user))
    form = SecurityGroupForm(request.POST or None, tenants=managed, prefix="sg") if managed else None
    if form is not None and request.method == "POST" and form.is_valid():
        tenant = next(t for t in managed if t.slug == form.cleaned_data["tenant"])
        done = service_call(
            request,
            lambda: services.security_group_create(
                actor=user, tenant=tenant, name=form.cleaned_data["name"], description=form.cleaned_data["description"]
            ),
            success=lambda group: _("安全组“%(name)s”已创建。") % {"name": group.name},
            next=lambda group: reverse("network:group", args=[group.pk]),
            form=form,
        )
        if done:
            return done
    context = {"page": _page(request, groups), "form": form, "section": "groups"}
    return render(request, "network/group_list.html", context)


@login_required
def group_detail(request, pk: int):
    user = request.user
    group = get_object_or_404(selectors.security_group_list_for(user), pk=pk)
    can_manage = rules.can_manage_networks(user, group.tenant)
    siblings = selectors.security_group_list_for(user).filter(tenant=group.tenant).order_by("name")
    form = RuleForm(request.POST or None, groups=siblings, prefix="rule") if can_manage else None
    if form is not None and request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        remote = siblings.filter(pk=values["remote_group"]).first() if values["remote_group"] else None
        done = service_call(
            request,
            lambda: services.rule_add(
                actor=user,
                group=group,
                direction=values["direction"],
                protocol=values["protocol"],
                port_min=values["port_min"],
                port_max=values["port_max"],
                remote_cidr=values["remote_cidr"],
                remote_group=remote,
            ),
            success=_("规则已添加，使用该安全组的桌面将随即更新。"),
            next=reverse("network:group", args=[group.pk]),
            form=form,
        )
        if done:
            return done
    nics = selectors.address_list_for(user).filter(security_group=group, state="allocated").count()
    context = {"group": group, "form": form, "can_manage": can_manage, "nics": nics, "section": "groups"}
    return render(request, "network/group_detail.html", context)


@login_required
@require_POST
def rule_delete(request, pk: int, rule_id: int):
    group = get_object_or_404(selectors.security_group_list_for(request.user), pk=pk)
    rule = get_object_or_404(SecurityGroupRule.objects.select_related("group__tenant"), pk=rule_id, group=group)
    return service_call(
        request,
        lambda: services.rule_delete(actor=request.user, rule=rule),
        success=_("规则已删除。"),
        next=reverse("network:group", args=[group.pk]),
    )


@login_required
@require_POST
def group_delete(request, pk: int):
    group = get_object_or_404(selectors.security_group_list_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.security_group_delete(actor=request.user, group=group),
        success=_("安全组已删除。"),
        next="network:groups",
        back=reverse("network:group", args=[pk]),
    )


@login_required
def elastic_ips(request):
    user = request.user
    context = {
        "eips": _page(request, selectors.elastic_ip_list_for(user).order_by("id")),
        "forwards": selectors.port_forward_list_for(user).order_by("id")[:200],
        "section": "eips",
    }
    return render(request, "network/elastic_ips.html", context)


# --- platform segments and address pools ----------------------------------------------------------


def _segment_create(request, form):
    values = form.cleaned_data
    return service_call(
        request,
        lambda: services.segment_create(actor=request.user, **values),
        success=lambda segment: _("物理网段“%(name)s”已创建。") % {"name": segment.name},
        next="network:segments",
        form=form,
    )


def _pool_create(request, form, tenants):
    values = dict(form.cleaned_data)
    values["tenant"] = next((t for t in tenants if t.slug == values["tenant"]), None)
    return service_call(
        request,
        lambda: services.address_pool_create(actor=request.user, **values),
        success=lambda pool: _("地址池“%(name)s”已创建。") % {"name": pool.name},
        next="network:segments",
        form=form,
    )


@login_required
def segments(request):
    """Platform segments and address pools: the system admin creates and assigns them; a tenant
    admin sees what its tenants may use; the audit admin reads them."""
    user = request.user
    admin = rules.is_system_admin(user)
    tenants = list(Tenant.objects.filter(is_active=True).order_by("path")) if admin else []
    segment_form = SegmentForm(request.POST or None, prefix="seg") if admin else None
    pool_form = AddressPoolForm(request.POST or None, tenants=tenants, prefix="pool") if admin else None
    if admin and request.method == "POST":
        done = None
        if "seg-name" in request.POST and segment_form.is_valid():
            done = _segment_create(request, segment_form)
        elif "pool-name" in request.POST and pool_form.is_valid():
            done = _pool_create(request, pool_form, tenants)
        if done:
            return done
    context = {
        "segments": selectors.segment_list_for(user).order_by("site", "kind", "name"),
        "pools": selectors.address_pool_list_for(user).order_by("name"),
        "can_manage": admin,
        "show_tenants": selectors.is_platform_reader(user),
        "tenants": tenants,
        "segment_form": segment_form,
        "pool_form": pool_form,
        "section": "segments",
    }
    return render(request, "network/segments.html", context)


def _tenant_named(request):
    slug = request.POST.get("tenant", "")
    return Tenant.objects.filter(slug=slug).first() if slug else None


@login_required
@require_POST
def segment_assign(request, pk: int):
    segment = get_object_or_404(selectors.segment_list_for(request.user), pk=pk)
    tenant = _tenant_named(request)
    assigned = request.POST.get("assigned", "1") == "1"
    if tenant is None:
        raise Http404
    return service_call(
        request,
        lambda: services.segment_assign(actor=request.user, segment=segment, tenant=tenant, assigned=assigned),
        success=_("已分配。") if assigned else _("已收回。"),
        next="network:segments",
    )


@login_required
@require_POST
def segment_delete(request, pk: int):
    segment = get_object_or_404(selectors.segment_list_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.segment_delete(actor=request.user, segment=segment),
        success=_("物理网段已删除。"),
        next="network:segments",
    )


@login_required
@require_POST
def pool_assign(request, pk: int):
    pool = get_object_or_404(selectors.address_pool_list_for(request.user), pk=pk)
    tenant = _tenant_named(request)
    return service_call(
        request,
        lambda: services.address_pool_assign(actor=request.user, pool=pool, tenant=tenant),
        success=_("已分配。") if tenant else _("已收回。"),
        next="network:segments",
    )


@login_required
@require_POST
def pool_delete(request, pk: int):
    pool = get_object_or_404(selectors.address_pool_list_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.address_pool_delete(actor=request.user, pool=pool),
        success=_("地址池已删除。"),
        next="network:segments",
    )

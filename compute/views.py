"""HTML pages of compute: desktops (list, detail, actions, snapshots, data disks) and the admin pages.

Same selectors and services as the API; a refused action becomes a message on the page
it came from, never a 500.
"""

import re
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from common.errors import ServiceError
from common.paging import Paginator
from common.ui import service_call
from compute import forms, rows, selectors, services
from compute.ha import views as ha_views
from compute.models import Cluster, Desktop, Endpoint, Flavor, GpuProfile, Image, ImageVersion, Site, StoragePool
from compute.reconcile import vcenter_import
from tenants.models import Tenant
from tenants.selectors import memberships_of

PAGE_SIZE = 20
UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _system_admin_only(request) -> None:
    if not selectors.is_system_admin(request.user):
        raise Http404


# --- desktops -----------------------------------------------------------------------------------


@login_required
@require_GET
def desktop_list(request):
    query = request.GET.get("q", "").strip()
    state = request.GET.get("state", "")
    if state not in Desktop.State.values:
        state = ""
    desktops = selectors.desktop_list_for(request.user, state=state, search=query).order_by("-created_at", "-id")
    page = Paginator(desktops, PAGE_SIZE, read=rows.desktop_rows).get_page(request.GET.get("page"))
    page.object_list = rows.dress(page.object_list)
    context = {
        "page": page,
        "query": query,
        "state": state,
        "states": Desktop.State.choices,
        "can_create": bool(memberships_of(request.user)),
    }
    return render(request, "compute/desktop_list.html", context)


@login_required
@require_GET
def desktop_row(request, pk):
    return _desktop_row(request, pk)


def _desktop_row(request, pk):
    """One desktop's row of the list, read and dressed as the list's are."""
    desktops = rows.desktop_rows(selectors.desktop_list_for(request.user, include_deleted=True))
    desktop = get_object_or_404(desktops, pk=pk)
    return render(request, "compute/_desktop_rows.html", {"desktops": rows.dress([desktop])})


@login_required
@require_GET
def desktop_state(request, pk):
    desktop = get_object_or_404(selectors.desktop_list_for(request.user, include_deleted=True), pk=pk)
    response = render(request, "compute/_desktop_state.html", {"desktop": desktop, "poll": True})
    if request.htmx and desktop.state not in Desktop.TRANSIENT and desktop.state != Desktop.State.REQUESTED:
        # The operation finished: reload the detail page so its actions match the new state.
        response["HX-Refresh"] = "true"
    return response


def _tenant_for_create(user) -> Tenant | None:
    return next((m.tenant for m in memberships_of(user)), None)


@login_required
@require_http_methods(["GET", "POST"])
def desktop_create(request):
    tenant = _tenant_for_create(request.user)
    if tenant is None:
        messages.error(request, _("只有租户成员可以创建云桌面。"))
        return redirect("compute:desktop-list")
    versions = selectors.image_version_list_for(request.user).filter(status=ImageVersion.Status.READY)
    flavors = selectors.flavor_list_for(request.user)
    form = forms.DesktopCreateForm(request.POST or None, image_versions=versions, flavors=flavors)
    if request.method == "POST" and form.is_valid():
        done = service_call(
            request,
            lambda: services.desktop_create(
                actor=request.user,
                tenant=tenant,
                image_version=form.cleaned_data["image_version"],
                flavor=form.cleaned_data["flavor"],
                name=form.cleaned_data["name"],
            ),
            success=_("云桌面已提交创建，稍候即可使用。"),
            next=lambda desktop: reverse("compute:desktop-detail", args=[desktop.pk]),
            form=form,
        )
        if done:
            return done
    context = {"form": form, "tenant": tenant, "has_images": versions.exists(), "has_flavors": flavors.exists()}
    return render(request, "compute/desktop_create.html", context)


@login_required
@require_GET
def desktop_detail(request, pk):
    desktop = get_object_or_404(selectors.desktop_list_for(request.user, include_deleted=True), pk=pk)
    context = {
        "desktop": desktop,
        "can_manage": selectors.desktop_manageable_by(request.user, desktop),
        "snapshots": selectors.snapshot_list_for(request.user, desktop=desktop),
        "volumes": selectors.volume_list_for(request.user, desktop=desktop),
        "available_volumes": selectors.volume_available_for(request.user, desktop=desktop),
        "nics": selectors.desktop_nics([desktop.pk])[desktop.pk],
        "snapshot_form": forms.SnapshotForm(),
        "resize_form": forms.ResizeForm(flavors=selectors.flavor_list_for(request.user)),
        "volume_form": forms.VolumeForm(),
        **ha_views.desktop_context(request.user, desktop),
    }
    return render(request, "compute/desktop_detail.html", context)


_ACTIONS = {
    "start": (services.POWER_SERVICES["start"], gettext_lazy("已发送开机指令。")),
    "stop": (services.POWER_SERVICES["stop"], gettext_lazy("已发送关机指令。")),
    "reboot": (services.POWER_SERVICES["reboot"], gettext_lazy("已发送重启指令。")),
    "reset": (services.desktop_reset, gettext_lazy("正在重置为黄金镜像。")),
    "retry": (services.desktop_retry, gettext_lazy("已重新提交创建。")),
    "delete": (services.desktop_delete, gettext_lazy("正在删除云桌面。")),
}


@login_required
@require_POST
def desktop_action(request, pk, verb):
    desktop = get_object_or_404(selectors.desktop_list_for(request.user), pk=pk)
    if verb == "clone":
        return service_call(
            request,
            lambda: services.desktop_clone(actor=request.user, desktop=desktop),
            success=_("已提交克隆。"),
            next=lambda clone: reverse("compute:desktop-detail", args=[clone.pk]),
            back=reverse("compute:desktop-detail", args=[pk]),
        )
    if verb not in _ACTIONS:
        raise Http404
    service, done = _ACTIONS[verb]
    response = service_call(
        request,
        lambda: service(actor=request.user, desktop=desktop),
        success=done,
        next=reverse("compute:desktop-detail", args=[pk]),
    )
    if request.htmx:
        return _desktop_row(request, pk)
    return response


def _on_desktop_page(request, pk, call, done: str, *, anchor: str = ""):
    """Run one service call for the desktop page: its refusal or ``done`` as a message, then back to the page."""
    page = reverse("compute:desktop-detail", args=[pk]) + (f"#{anchor}" if anchor else "")
    return service_call(request, call, success=done, next=page)


def _refused(request, pk, message: str, *, anchor: str = ""):
    messages.error(request, message)
    return redirect(reverse("compute:desktop-detail", args=[pk]) + (f"#{anchor}" if anchor else ""))


@login_required
@require_POST
def desktop_resize(request, pk):
    desktop = get_object_or_404(selectors.desktop_list_for(request.user), pk=pk)
    form = forms.ResizeForm(request.POST, flavors=selectors.flavor_list_for(request.user))
    if not form.is_valid():
        return _refused(request, pk, _("请选择新规格。"))
    flavor = form.cleaned_data["flavor"]
    return _on_desktop_page(
        request,
        pk,
        lambda: services.desktop_resize(actor=request.user, desktop=desktop, flavor=flavor),
        _("正在调整规格，完成后即可开机。"),
    )


@login_required
@require_POST
def snapshot_create(request, pk):
    desktop = get_object_or_404(selectors.desktop_list_for(request.user), pk=pk)
    form = forms.SnapshotForm(request.POST)
    if not form.is_valid():
        return _refused(request, pk, _("请填写快照名称。"), anchor="snapshots")
    return _on_desktop_page(
        request,
        pk,
        lambda: services.snapshot_create(actor=request.user, desktop=desktop, **form.cleaned_data),
        _("正在创建快照。"),
        anchor="snapshots",
    )


_SNAPSHOT_OPS = {
    "revert": (services.snapshot_revert, gettext_lazy("正在恢复快照。")),
    "delete": (services.snapshot_delete, gettext_lazy("正在删除快照。")),
}


@login_required
@require_POST
def snapshot_action(request, pk, snapshot_pk, op):
    desktop = get_object_or_404(selectors.desktop_list_for(request.user), pk=pk)
    snapshot = get_object_or_404(selectors.snapshot_list_for(request.user, desktop=desktop), pk=snapshot_pk)
    if op not in _SNAPSHOT_OPS:
        raise Http404
    service, done = _SNAPSHOT_OPS[op]
    return _on_desktop_page(
        request, pk, lambda: service(actor=request.user, snapshot=snapshot), done, anchor="snapshots"
    )


@login_required
@require_POST
def volume_attach(request, pk):
    """A new data disk (size), or a detached disk of the tenant (its id), onto the desktop."""
    desktop = get_object_or_404(selectors.desktop_list_for(request.user), pk=pk)
    existing = request.POST.get("volume", "")
    if existing:
        volume = get_object_or_404(
            selectors.volume_available_for(request.user, desktop=desktop), pk=existing if existing.isdigit() else 0
        )

        def call():
            services.volume_attach_existing(actor=request.user, desktop=desktop, volume=volume)

    else:
        form = forms.VolumeForm(request.POST)
        if not form.is_valid():
            return _refused(request, pk, _("数据盘容量必须在 1 到 2048 GiB 之间。"), anchor="volumes")

        def call():
            services.volume_attach(actor=request.user, desktop=desktop, **form.cleaned_data)

    return _on_desktop_page(request, pk, call, _("正在挂载数据盘。"), anchor="volumes")


@login_required
@require_POST
def volume_detach(request, pk, volume_pk):
    desktop = get_object_or_404(selectors.desktop_list_for(request.user), pk=pk)
    volume = get_object_or_404(selectors.volume_list_for(request.user, desktop=desktop), pk=volume_pk)
    return _on_desktop_page(
        request,
        pk,
        lambda: services.volume_detach(actor=request.user, volume=volume),
        _("正在卸载数据盘，盘上的数据会保留。"),
        anchor="volumes",
    )


@login_required
@require_POST
def volume_delete(request, pk, volume_pk):
    """Delete a detached data disk offered on the desktop page (the page asks for confirmation first)."""
    desktop = get_object_or_404(selectors.desktop_list_for(request.user), pk=pk)
    volume = get_object_or_404(selectors.volume_available_for(request.user, desktop=desktop), pk=volume_pk)
    return _on_desktop_page(
        request,
        pk,
        lambda: services.volume_delete(actor=request.user, volume=volume),
        _("正在删除数据盘。"),
        anchor="volumes",
    )


# --- admin pages: endpoints, images, flavors ---------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_list(request):
    _system_admin_only(request)
    form = forms.EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        site = services.site_ensure(slug=data.pop("site"))

        def refused(request, exc):
            reason = exc.detail.get("reason", "") if isinstance(exc.detail, dict) else ""
            form.add_error(None, f"{exc.message} {reason}".strip())

        done = service_call(
            request,
            lambda: services.endpoint_register(actor=request.user, site=site, **data),
            success=lambda endpoint: _("端点“%(name)s”已注册并通过检查。") % {"name": endpoint.name},
            next="compute:endpoint-list",
            form=form,
            refused=refused,
        )
        if done:
            return done
    endpoints = Endpoint.objects.select_related("site", "cluster").order_by("name")
    return render(
        request, "compute/endpoint_list.html", {"endpoints": endpoints, "form": form, "import_form": forms.ImportForm()}
    )


@login_required
@require_POST
def endpoint_import(request, pk):
    _system_admin_only(request)
    endpoint = get_object_or_404(Endpoint, pk=pk, kind=Endpoint.Kind.VCENTER)
    form = forms.ImportForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请填写租户标识。"))
        return redirect("compute:endpoint-list")
    return service_call(
        request,
        lambda: _import_reported(
            request,
            vcenter_import(
                actor=request.user,
                endpoint_name=endpoint.name,
                tenant_slug=form.cleaned_data["tenant"],
                dry_run=form.cleaned_data["dry_run"],
            ),
        ),
        next="compute:endpoint-list",
    )


def _import_reported(request, result: dict) -> None:
    """The takeover's counts, and a warning naming the VMs it took over beyond the tenant's quota."""
    messages.success(
        request,
        _("接管%(dry)s：新建 %(created)s，更新 %(updated)s，未变 %(unchanged)s，错误 %(errors)s。")
        % {
            "dry": _("（预览）") if result["dry_run"] else "",
            "created": result["created"],
            "updated": result["updated"],
            "unchanged": result["unchanged"],
            "errors": len(result["errors"]),
        },
    )
    if result["over_quota"]:
        messages.warning(
            request,
            ngettext(
                "%(count)s 台虚拟机超出租户配额，已接管但未计入配额（提高配额后再次接管即可计入）：%(names)s",
                "%(count)s 台虚拟机超出租户配额，已接管但未计入配额（提高配额后再次接管即可计入）：%(names)s",
                len(result["over_quota"]),
            )
            % {
                "count": len(result["over_quota"]),
                "names": "、".join(item["vm"] for item in result["over_quota"][:10]),
            },
        )


@login_required
@require_http_methods(["GET", "POST"])
def image_list(request):
    _system_admin_only(request)
    form = forms.ImageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        slug = data.pop("tenant")
        tenant = Tenant.objects.filter(slug=slug).first() if slug else None
        if slug and tenant is None:
            form.add_error("tenant", _("没有这个租户。"))
        elif done := service_call(
            request,
            lambda: services.image_create(actor=request.user, tenant=tenant, **data),
            success=_("镜像已创建，请上传或导入第一个版本。"),
            next="compute:image-list",
            form=form,
        ):
            return done
    images = Image.objects.prefetch_related("versions__endpoint").select_related("tenant").order_by("name")
    endpoints = Endpoint.objects.filter(kind=Endpoint.Kind.LIBVIRT, is_active=True).order_by("name")
    return render(
        request,
        "compute/image_list.html",
        {
            "images": images,
            "form": form,
            "endpoints": endpoints,
            "template_form": forms.TemplateImportForm(),
        },
    )


@login_required
@require_POST
def image_upload_chunk(request, pk):
    """One chunk of an image file; the last one hands the file to image_upload (qemu-img check, import).

    Files arrive in chunks so an image of several GiB passes the request size limit and
    the page can show real progress.
    """
    _system_admin_only(request)
    image = get_object_or_404(Image, pk=pk)
    upload_id = request.POST.get("upload_id", "")
    chunk = request.FILES.get("chunk")
    try:
        offset, total = int(request.POST.get("offset", "")), int(request.POST.get("total", ""))
    except ValueError:
        offset = total = -1
    if not UPLOAD_ID_RE.match(upload_id) or chunk is None or offset < 0 or total <= 0:
        return JsonResponse({"code": "invalid", "message": _("上传请求不完整。"), "detail": {}}, status=400)
    filename = Path(request.POST.get("filename", "image")).name.lower()
    suffix = ".iso" if filename.endswith(".iso") else ".img"
    part = services.upload_dir() / f"{upload_id}{suffix}"
    size = part.stat().st_size if part.exists() else 0
    if offset != size:
        return JsonResponse(
            {"code": "upload_offset_mismatch", "message": _("上传中断，请重新开始。"), "detail": {"expected": size}},
            status=409,
        )
    with part.open("ab") as out:
        for piece in chunk.chunks():
            out.write(piece)
    received = size + chunk.size
    if received < total:
        return JsonResponse({"received": received})
    endpoint = get_object_or_404(Endpoint, pk=request.POST.get("endpoint") or 0, kind=Endpoint.Kind.LIBVIRT)
    try:
        version = services.image_upload(actor=request.user, image=image, endpoint=endpoint, path=str(part))
    except ServiceError as exc:
        part.unlink(missing_ok=True)
        return JsonResponse({"code": exc.code, "message": exc.message, "detail": exc.detail}, status=exc.status)
    return JsonResponse({"received": received, "version": version.version, "status": version.status})


@login_required
@require_POST
def image_template_import(request, pk):
    _system_admin_only(request)
    image = get_object_or_404(Image, pk=pk)
    form = forms.TemplateImportForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请选择 vCenter 端点并填写模板名。"))
        return redirect("compute:image-list")
    return service_call(
        request,
        lambda: services.image_import_template(actor=request.user, image=image, **form.cleaned_data),
        success=_("模板已导入为新版本。"),
        next="compute:image-list",
    )


@login_required
@require_http_methods(["GET", "POST"])
def flavor_list(request, pk=None):
    """The flavors, with a form beside them: a new flavor, or (with ``pk``) the one being edited."""
    _system_admin_only(request)
    editing = get_object_or_404(Flavor, pk=pk) if pk is not None else None
    if editing is None:
        form = forms.FlavorForm(request.POST or None)
        call, success = (lambda data: services.flavor_create(actor=request.user, **data)), _("规格已创建。")
    else:
        initial = {f: getattr(editing, f) for f in ("name", "vcpus", "memory_mib", "disk_gib", "is_active")}
        form = forms.FlavorEditForm(request.POST or None, initial={**initial, "gpu_profile": editing.gpu_profile})
        call = lambda data: services.flavor_update(actor=request.user, flavor=editing, **data)  # noqa: E731
        success = _("规格已保存。已有桌面保持原来的大小，新建的桌面使用新规格。")
    if request.method == "POST" and form.is_valid():
        done = service_call(
            request, lambda: call(form.cleaned_data), success=success, next="compute:flavor-list", form=form
        )
        if done:
            return done
    flavors = Flavor.objects.select_related("gpu_profile").order_by("vcpus", "memory_mib")
    return render(request, "compute/flavor_list.html", {"flavors": flavors, "form": form, "editing": editing})


# --- admin pages: sites, clusters, storage pools, GPU profiles -----------------------------------------


def _yes_no(value: bool) -> str:
    return _("是") if value else _("否")


# kind → (model, form, queryset, page title, column headings, cells of one row)
INVENTORY = {
    "sites": (
        Site,
        forms.SiteForm,
        lambda: Site.objects.order_by("slug"),
        gettext_lazy("站点"),
        (gettext_lazy("标识"), gettext_lazy("名称"), gettext_lazy("Celery 队列")),
        lambda o: (o.slug, o.name, format_html("<code>{}</code>", o.celery_queue)),
    ),
    "clusters": (
        Cluster,
        forms.ClusterForm,
        lambda: Cluster.objects.select_related("site").order_by("site__slug", "name"),
        gettext_lazy("集群"),
        (
            gettext_lazy("名称"),
            gettext_lazy("站点"),
            gettext_lazy("类型"),
            gettext_lazy("放置策略"),
            gettext_lazy("超分比（CPU / 内存）"),
        ),
        lambda o: (
            o.name,
            o.site.name,
            o.get_kind_display(),
            o.get_policy_display(),
            f"{o.cpu_overcommit} / {o.memory_overcommit}",
        ),
    ),
    "pools": (
        StoragePool,
        forms.StoragePoolForm,
        lambda: StoragePool.objects.select_related("endpoint").order_by("endpoint__name", "name"),
        gettext_lazy("存储池"),
        (
            gettext_lazy("名称"),
            gettext_lazy("端点"),
            gettext_lazy("类型"),
            gettext_lazy("副本数"),
            gettext_lazy("默认"),
        ),
        lambda o: (o.name, o.endpoint.name, o.get_kind_display(), o.replicas, _yes_no(o.is_default)),
    ),
    "gpu-profiles": (
        GpuProfile,
        forms.GpuProfileForm,
        lambda: GpuProfile.objects.order_by("name"),
        gettext_lazy("GPU 规格"),
        (gettext_lazy("名称"), gettext_lazy("模式"), gettext_lazy("vGPU 类型"), gettext_lazy("GPU 数")),
        lambda o: (o.name, o.get_mode_display(), o.vgpu_type or "—", o.gpus),
    ),
}


def _inventory(kind: str):
    if kind not in INVENTORY:
        raise Http404
    return INVENTORY[kind]


@login_required
@require_http_methods(["GET", "POST"])
def inventory_list(request, kind, pk=None):
    """List one kind of inventory with a form beside it: a new object, or (with ``pk``) the one being edited."""
    _system_admin_only(request)
    model, form_class, queryset, title, headings, cells = _inventory(kind)
    instance = get_object_or_404(model, pk=pk) if pk is not None else None
    form = form_class(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        done = service_call(
            request,
            lambda: services.inventory_save(
                actor=request.user, obj=form.save(commit=False), pool_path=form.cleaned_data.get("path", "")
            ),
            success=_("已保存。"),
            next=reverse("compute:inventory-list", kwargs={"kind": kind}),
            form=form,
        )
        if done:
            return done
    page = Paginator(queryset(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "kind": kind,
        "title": title,
        "headings": headings,
        "rows": [(obj, cells(obj)) for obj in page],
        "page": page,
        "form": form,
        "editing": instance,
    }
    return render(request, "compute/inventory_list.html", context)

"""Writes of the compute app: inventory, images, flavors, desktops, snapshots and data disks.

Every service is keyword-only, runs in one transaction, records its audit event there
and starts hypervisor work with ``transaction.on_commit`` (the task then finds the row
committed). State changes go through the verbs of ``compute.models`` under the row lock
of ``Desktop.objects.locked``. The ``*_finish``/``*_fail`` services are what tasks call
with the hypervisor's answer.
"""

import logging
import re
import secrets
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.db import retry_on_deadlock, share_lock_status
from common.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound
from common.tasks import enqueue
from compute import hooks, networking, quota, selectors
from compute.drivers.base import DriverError, ErrorCode, HostInfo, VMInfo
from compute.hypervisor import driver_for, driver_forget, driver_open
from compute.models import (
    Cluster,
    Desktop,
    Endpoint,
    Flavor,
    GpuProfile,
    Host,
    Image,
    ImageVersion,
    Site,
    Snapshot,
    StoragePool,
    Visibility,
    Volume,
)
from compute.placement import place
from compute.placement import resize_fit as place_resize

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
POWER = {"running": Desktop.Power.RUNNING, "stopped": Desktop.Power.STOPPED, "paused": Desktop.Power.PAUSED}


# --- sites, endpoints ---------------------------------------------------------------------


def site_ensure(*, slug: str = "main", name: str = "") -> Site:
    site, _created = Site.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    return site


def _cluster_for(site: Site, kind: str = Cluster.Kind.GENERAL) -> Cluster:
    cluster, _created = Cluster.objects.get_or_create(site=site, name=f"{site.slug}-{kind}", defaults={"kind": kind})
    return cluster


def _driver_error_message(exc: DriverError) -> str:
    if exc.code == ErrorCode.AUTH:
        return _("虚拟化平台拒绝了用户名或密码。")
    if exc.code in (ErrorCode.UNREACHABLE, ErrorCode.TIMEOUT):
        return _("无法连接到虚拟化平台，请检查地址和网络。")
    return _("虚拟化平台返回错误。")


def _host_record(endpoint: Endpoint, info: HostInfo) -> Host:
    host, _created = Host.objects.update_or_create(
        endpoint=endpoint,
        name=info.name[:255] or endpoint.name,
        defaults={
            "cpus": info.cpus,
            "memory_mib": info.memory_mib,
            "free_memory_mib": info.free_memory_mib,
            "hypervisor": info.hypervisor[:100],
        },
    )
    return host


def endpoint_register(
    *,
    actor,
    name: str,
    kind: str,
    url: str,
    username: str = "",
    password: str = "",
    site: Site | None = None,
    cluster_kind: str = Cluster.Kind.GENERAL,
    domain_type: str = Endpoint.DomainType.KVM,
    max_concurrency: int = 4,
    storage_pool: str = "",
    options: dict | None = None,
) -> Endpoint:
    """Register a hypervisor after checking that it answers and accepts the credentials."""
    if not NAME_RE.match(name or ""):
        raise InvalidInput(_("名称只能包含字母、数字、点、横线和下划线。"), code="endpoint_name_invalid")
    if kind not in Endpoint.Kind.values:
        raise InvalidInput(_("未知的虚拟化类型：%(kind)s") % {"kind": kind}, code="endpoint_kind_invalid")
    if domain_type not in Endpoint.DomainType.values:
        raise InvalidInput(_("虚拟化类型只能是 qemu 或 kvm。"), code="endpoint_domain_type_invalid")
    if not url:
        raise InvalidInput(_("请填写地址。"), code="endpoint_url_missing")
    if Endpoint.objects.filter(name=name).exists():
        raise Conflict(_("端点名称“%(name)s”已被使用。") % {"name": name}, code="endpoint_name_taken")
    endpoint = Endpoint(
        name=name,
        kind=kind,
        url=url,
        username=username,
        domain_type=domain_type,
        max_concurrency=max_concurrency,
        options=options or {},
    )
    endpoint.set_password(password)
    # Check outside the transaction: a slow hypervisor must not hold database locks.
    try:
        driver = driver_open(endpoint)
        try:
            driver.check()
            info = driver.host_info()
        finally:
            driver.close()
    except DriverError as exc:
        raise InvalidInput(
            _driver_error_message(exc),
            code="endpoint_credentials_refused" if exc.code == ErrorCode.AUTH else "endpoint_unreachable",
            detail={"reason": exc.message},
        ) from exc
    with transaction.atomic():
        site = site or site_ensure()
        endpoint.site = site
        endpoint.cluster = _cluster_for(site, cluster_kind)
        endpoint.status = Endpoint.Status.OK
        endpoint.last_checked_at = timezone.now()
        try:
            endpoint.save()
        except IntegrityError as exc:
            raise Conflict(_("端点名称“%(name)s”已被使用。") % {"name": name}, code="endpoint_name_taken") from exc
        _host_record(endpoint, info)
        pool_name = storage_pool or ("default" if kind == Endpoint.Kind.LIBVIRT else "")
        if pool_name:
            StoragePool.objects.create(endpoint=endpoint, name=pool_name, is_default=True)
        event_record(
            action=Action.ENDPOINT_REGISTERED,
            actor=actor,
            target=endpoint,
            detail={"kind": kind, "url": url, "site": site.slug},
        )
    return endpoint


def endpoint_refresh(*, endpoint: Endpoint, info: HostInfo | None, error: str = "") -> Endpoint:
    """Record what a check found: capacity when reachable, the reason when not."""
    with transaction.atomic():
        endpoint = Endpoint.objects.locked(endpoint.pk)
        endpoint.last_checked_at = timezone.now()
        if info is None:
            endpoint.status = Endpoint.Status.UNREACHABLE
            endpoint.last_error = error[:2000]
        else:
            endpoint.status = Endpoint.Status.OK
            endpoint.last_error = ""
            _host_record(endpoint, info)
        endpoint.save(update_fields=["status", "last_error", "last_checked_at"])
    return endpoint


def endpoint_update(
    *, actor, endpoint: Endpoint, password: str | None = None, max_concurrency: int | None = None, is_active=None
) -> Endpoint:
    with transaction.atomic():
        endpoint = Endpoint.objects.locked(endpoint.pk)
        changed = []
        if password is not None:
            endpoint.set_password(password)
            changed.append("password")
        if max_concurrency is not None:
            if not 1 <= max_concurrency <= 64:
                raise InvalidInput(_("并发数必须在 1 到 64 之间。"), code="endpoint_concurrency_invalid")
            endpoint.max_concurrency = max_concurrency
            changed.append("max_concurrency")
        if is_active is not None:
            endpoint.is_active = is_active
            changed.append("is_active")
        endpoint.save()
        event_record(action=Action.ENDPOINT_CHANGED, actor=actor, target=endpoint, detail={"changed": changed})
    driver_forget(endpoint.pk)
    return endpoint


# --- sites, clusters, storage pools, GPU profiles (the system admin's inventory pages) ----------------


def _require_system_admin(actor) -> None:
    if not selectors.is_system_admin(actor):
        raise Forbidden(_("只有系统管理员可以管理虚拟化资源。"), code="system_admin_only")


def inventory_save(*, actor, obj: Site | Cluster | StoragePool | GpuProfile, pool_path: str = ""):
    """Create or change a site, cluster, storage pool or GPU profile: checked against the model's rules
    (a distributed pool keeps 2-6 replicas, a local one 1), saved and audited in one transaction.

    A new libvirt storage pool with ``pool_path`` is also set up on the hypervisor (a directory pool).
    """
    _require_system_admin(actor)
    created = obj.pk is None
    try:
        obj.full_clean()
    except ValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        message = " ".join(m for messages in detail.values() for m in messages)
        raise InvalidInput(message, code="inventory_invalid", detail=detail) from exc
    if isinstance(obj, StoragePool) and created and pool_path:
        if obj.endpoint.kind != Endpoint.Kind.LIBVIRT:
            raise InvalidInput(
                _("只能在 libvirt 端点上创建存储池；vCenter 的数据存储在 vCenter 中管理。"),
                code="pool_create_unsupported",
            )
        try:
            driver_for(obj.endpoint).pool_ensure(obj.name, pool_path)
        except DriverError as exc:
            raise InvalidInput(
                _("无法在虚拟化平台上创建存储池。"), code="pool_create_failed", detail={"reason": exc.message}
            ) from exc
    with transaction.atomic():
        if isinstance(obj, StoragePool) and obj.is_default:
            # One default pool per endpoint: new desktops' disks go there.
            StoragePool.objects.filter(endpoint=obj.endpoint_id, is_default=True).exclude(pk=obj.pk).update(
                is_default=False
            )
        try:
            obj.save()
        except IntegrityError as exc:
            raise Conflict(_("名称已被使用。"), code="inventory_name_taken") from exc
        event_record(
            action=Action.INVENTORY_CHANGED,
            actor=actor,
            target=obj,
            detail={"kind": obj._meta.model_name, "created": created, "path": pool_path},
        )
    return obj


# --- images and flavors ---------------------------------------------------------------------


def image_create(
    *,
    actor,
    name: str,
    visibility: str = Visibility.PLATFORM,
    tenant=None,
    course=None,
    os_type: str = "",
    description: str = "",
) -> Image:
    if not name:
        raise InvalidInput(_("请填写镜像名称。"), code="image_name_missing")
    if visibility == Visibility.TENANT and tenant is None:
        raise InvalidInput(_("租户可见的镜像需要指定租户。"), code="image_tenant_missing")
    if visibility == Visibility.COURSE and course is None:
        raise InvalidInput(_("课程可见的镜像需要指定课程。"), code="image_course_missing")
    with transaction.atomic():
        image = Image.objects.create(
            name=name,
            visibility=visibility,
            tenant=tenant if visibility == Visibility.TENANT else (course.tenant if course else None),
            course=course if visibility == Visibility.COURSE else None,
            os_type=os_type,
            description=description,
        )
        event_record(action=Action.IMAGE_CREATED, actor=actor, target=image, detail={"visibility": visibility})
    return image


def _next_version(image: Image) -> int:
    return (image.versions.aggregate(m=Max("version"))["m"] or 0) + 1


def image_version_register(
    *, actor, image: Image, endpoint: Endpoint, pool: str = "", volume: str = "", template: str = "", size_bytes=0
) -> ImageVersion:
    """Record a golden image already on the hypervisor (a volume in a pool, or a vCenter template)."""
    if endpoint.kind == Endpoint.Kind.LIBVIRT and not (pool and volume):
        raise InvalidInput(_("libvirt 镜像需要存储池和卷名。"), code="image_volume_missing")
    if endpoint.kind == Endpoint.Kind.VCENTER and not template:
        raise InvalidInput(_("vCenter 镜像需要模板名。"), code="image_template_missing")
    with transaction.atomic():
        Image.objects.select_for_update().get(pk=image.pk)
        version = ImageVersion.objects.create(
            image=image,
            version=_next_version(image),
            endpoint=endpoint,
            pool=pool,
            volume=volume,
            template=template,
            format=ImageVersion.Format.TEMPLATE if template else ImageVersion.Format.QCOW2,
            size_bytes=size_bytes,
            status=ImageVersion.Status.READY,
        )
        event_record(
            action=Action.IMAGE_VERSION_ADDED,
            actor=actor,
            target=version,
            detail={"endpoint": endpoint.name, "pool": pool, "volume": volume, "template": template},
        )
    return version


def qemu_img_check(path: str) -> tuple[str, int]:
    """(format, virtual size) of an uploaded file, checked with ``qemu-img info`` before accepting it."""
    import json

    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, the path is ours
            ["qemu-img", "info", "--output=json", path],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InvalidInput(_("无法检查镜像文件：%(error)s") % {"error": exc}, code="image_check_failed") from exc
    if proc.returncode != 0:
        raise InvalidInput(
            _("文件不是可用的磁盘镜像。"), code="image_bad_format", detail={"reason": proc.stderr[-500:]}
        )
    info = json.loads(proc.stdout)
    fmt, size = info.get("format", ""), int(info.get("virtual-size", 0))
    if fmt not in ("qcow2", "raw"):
        raise InvalidInput(
            _("不支持的镜像格式“%(format)s”，只接受 qcow2、raw 或 ISO。") % {"format": fmt}, code="image_bad_format"
        )
    if info.get("backing-filename"):
        raise InvalidInput(_("镜像依赖其他文件（backing file），请先合并。"), code="image_has_backing_file")
    if size < 1024 * 1024:
        raise InvalidInput(_("镜像太小，不是可用的磁盘镜像。"), code="image_too_small")
    return fmt, size


def upload_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "image-uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def image_upload(*, actor, image: Image, endpoint: Endpoint, path: str, pool: str = "") -> ImageVersion:
    """Accept an uploaded qcow2/raw/ISO file (checked with qemu-img) and import it into the endpoint's pool."""
    fmt, size = qemu_img_check(path)
    is_iso = path.lower().endswith(".iso")
    if endpoint.kind != Endpoint.Kind.LIBVIRT:
        raise InvalidInput(_("只能向 libvirt 端点上传镜像文件；vCenter 请导入模板。"), code="image_upload_unsupported")
    pool = pool or (
        StoragePool.objects.filter(endpoint=endpoint).order_by("-is_default").values_list("name", flat=True).first()
        or ""
    )
    if not pool:
        raise InvalidInput(_("端点没有存储池。"), code="endpoint_has_no_pool")
    with transaction.atomic():
        Image.objects.select_for_update().get(pk=image.pk)
        number = _next_version(image)
        version = ImageVersion.objects.create(
            image=image,
            version=number,
            endpoint=endpoint,
            pool=pool,
            volume=f"cc-image-{image.pk}-v{number}.{'iso' if is_iso else fmt}",
            format=ImageVersion.Format.ISO if is_iso else fmt,
            size_bytes=size,
            status=ImageVersion.Status.PENDING,
            source_path=path,
        )
        event_record(
            action=Action.IMAGE_VERSION_ADDED,
            actor=actor,
            target=version,
            detail={"endpoint": endpoint.name, "format": version.format, "size_bytes": size},
        )
        enqueue("compute.tasks.images.image_import", version.pk, queue=endpoint.site.celery_queue)
    return version


def image_import_template(*, actor, image: Image, endpoint: Endpoint, template: str) -> ImageVersion:
    """Use a vCenter template as a new version of ``image`` after checking the template exists."""
    try:
        driver = driver_open(endpoint)
        try:
            templates = {t.name: t for t in driver.list_templates()}
        finally:
            driver.close()
    except DriverError as exc:
        raise InvalidInput(_driver_error_message(exc), code="endpoint_unreachable", detail={"reason": exc.message})
    if template not in templates:
        raise InvalidInput(_("vCenter 中没有模板“%(name)s”。") % {"name": template}, code="image_template_not_found")
    size = sum(d.size_bytes for d in templates[template].disks)
    return image_version_register(actor=actor, image=image, endpoint=endpoint, template=template, size_bytes=size)


def image_version_finish(*, version_id: int, error: str = "") -> ImageVersion:
    with transaction.atomic():
        version = ImageVersion.objects.locked(version_id)
        version.status = ImageVersion.Status.FAILED if error else ImageVersion.Status.READY
        version.last_error = error[:2000]
        version.save(update_fields=["status", "last_error"])
    if not error and version.source_path:
        Path(version.source_path).unlink(missing_ok=True)
    return version


def flavor_create(
    *, actor, name: str, vcpus: int, memory_mib: int, disk_gib: int, gpu_profile: GpuProfile | None = None, tenant=None
) -> Flavor:
    if vcpus < 1 or memory_mib < 64 or disk_gib < 1:
        raise InvalidInput(_("规格的 CPU、内存和磁盘必须为正数。"), code="flavor_invalid")
    with transaction.atomic():
        flavor, created = Flavor.objects.get_or_create(
            name=name,
            defaults={
                "vcpus": vcpus,
                "memory_mib": memory_mib,
                "disk_gib": disk_gib,
                "gpu_profile": gpu_profile,
                "tenant": tenant,
            },
        )
        if not created:
            raise Conflict(_("规格名称“%(name)s”已被使用。") % {"name": name}, code="flavor_name_taken")
        event_record(action=Action.FLAVOR_CHANGED, actor=actor, target=flavor, detail={"created": True})
    return flavor


# --- desktops -------------------------------------------------------------------------------


def _vm_name(tenant, owner) -> str:
    who = re.sub(r"[^a-z0-9]+", "-", (getattr(owner, "username", "") or "shared").lower()).strip("-")[:20]
    return f"cc-{tenant.slug[:12]}-{who}-{secrets.token_hex(3)}"


def _require_manage(actor, desktop: Desktop) -> None:
    if not selectors.desktop_manageable_by(actor, desktop):
        raise Forbidden(_("您只能查看此桌面，不能操作它。"), code="desktop_read_only")


@retry_on_deadlock
def desktop_create(
    *,
    actor,
    tenant,
    image_version: ImageVersion,
    flavor: Flavor,
    owner=None,
    course=None,
    name: str = "",
    endpoint: Endpoint | None = None,
) -> Desktop:
    """Request a desktop: validate, place, reserve quota, and queue its provisioning."""
    owner = owner or actor
    if not selectors.tenant_creatable_for(actor, tenant):
        raise NotFound(_("租户不存在。"), code="tenant_not_found")
    if owner.pk != actor.pk and not (
        selectors.is_system_admin(actor)
        or selectors.tenants_with_role(actor, "tenant_admin").filter(pk=tenant.pk).exists()
        or (course is not None and course.teacher_id == actor.pk)
    ):
        raise Forbidden(_("只能为自己创建桌面。"), code="desktop_owner_forbidden")
    if course is not None and course.tenant_id != tenant.pk:
        raise InvalidInput(_("课程不属于该租户。"), code="course_tenant_mismatch")
    if image_version.status != ImageVersion.Status.READY:
        raise InvalidInput(_("镜像版本尚不可用。"), code="image_not_ready")
    if not selectors.image_visible_to_tenant(image_version.image, tenant=tenant, course=course):
        raise InvalidInput(_("未知镜像。"), code="image_not_found")
    if not selectors.flavor_usable_by_tenant(flavor, tenant=tenant):
        raise InvalidInput(_("未知规格。"), code="flavor_not_found")
    if image_version.size_gib > flavor.disk_gib:
        raise InvalidInput(
            _("规格的系统盘（%(flavor)s GiB）小于镜像（%(image)s GiB）。")
            % {"flavor": flavor.disk_gib, "image": image_version.size_gib},
            code="flavor_disk_too_small",
        )
    name = (name or f"{image_version.image.name}-{getattr(owner, 'username', '')}")[:100]
    hooks.desktop_create_check(tenant=tenant, course=course)  # e.g. billing's blocking budgets
    with transaction.atomic():
        # Checked again under a shared lock: the version may have been retired since (the
        # classroom retires superseded course images once no desktop uses them).
        if share_lock_status(ImageVersion, image_version.pk) != ImageVersion.Status.READY:
            raise InvalidInput(_("镜像版本尚不可用。"), code="image_not_ready")
        placement = place(flavor=flavor, image_version=image_version, endpoint=endpoint)
        reservation = quota.desktop_quota_reserve(
            actor=actor,
            tenant=tenant,
            course=course,
            owner=owner,
            vcpus=flavor.vcpus,
            memory_mib=flavor.memory_mib,
            disk_gib=flavor.disk_gib,
            gpus=flavor.gpus,
        )
        desktop = Desktop(
            name=name,
            vm_name=_vm_name(tenant, owner),
            tenant=tenant,
            owner=owner,
            course=course,
            image_version=image_version,
            flavor=flavor,
            endpoint=placement.endpoint,
            host=placement.host,
            storage_pool=placement.storage_pool,
            vcpus=flavor.vcpus,
            memory_mib=flavor.memory_mib,
            disk_gib=flavor.disk_gib,
            gpus=flavor.gpus,
            gpu_device=placement.gpu_device,
            quota_reservation=reservation,
            created_by=actor,
        )
        desktop.provision()
        desktop.save()
        # Its NIC's IP and MAC from the tenant's network (none: the endpoint's default network).
        networking.desktop_nics_allocate(desktop=desktop)
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_provision", desktop.pk, queue=placement.endpoint.site.celery_queue
        )
        desktop.save(update_fields=["task_id"])
        hooks.desktop_changed(desktop=desktop, reason="created")
        event_record(
            action=Action.DESKTOP_CREATED,
            actor=actor,
            target=desktop,
            tenant=tenant,
            detail={"flavor": flavor.name, "image": str(image_version), "endpoint": placement.endpoint.name},
        )
    return desktop


def desktop_clone(*, actor, desktop: Desktop, name: str = "") -> Desktop:
    """A new desktop whose system disk is a copy of this (stopped) desktop's, for the same owner and course.

    The source is held (busy) until the copy is made, so nobody starts it halfway; the
    clone is placed on the source's endpoint, where the disk is, and takes its own quota.
    """
    _require_manage(actor, desktop)
    if desktop.image_version is None or desktop.flavor is None:
        raise InvalidInput(_("接管的虚拟机没有镜像和规格，不能克隆。"), code="desktop_not_clonable")
    with transaction.atomic():
        source = Desktop.objects.locked(desktop.pk)
        if source.state != Desktop.State.STOPPED:
            raise InvalidTransition(
                _("请先关机再克隆：运行中的磁盘无法得到一致的副本。"),
                code="desktop_must_be_stopped",
                detail={"state": source.state, "action": "clone"},
            )
        clone = desktop_create(
            actor=actor,
            tenant=source.tenant,
            image_version=source.image_version,
            flavor=source.flavor,
            owner=source.owner or actor,
            course=source.course,
            name=name or f"{source.name}-clone",
            endpoint=source.endpoint,
        )
        clone.cloned_from = source
        clone.save(update_fields=["cloned_from"])
        source.occupy(action=_("克隆"))
        source.task_id = clone.task_id
        source.save()
        event_record(
            action=Action.DESKTOP_CLONED,
            actor=actor,
            target=clone,
            tenant=source.tenant,
            detail={"source": source.pk},
        )
    return clone


def desktop_clone_source_release(*, desktop_id: int) -> None:
    """The copy is made (or failed): the source, held while its disk was copied, is stopped again."""
    desktop_settle(desktop_id=desktop_id, power=Desktop.Power.STOPPED)


_VERB_ACTIONS = {
    "start": Action.DESKTOP_STARTED,
    "stop": Action.DESKTOP_STOPPED,
    "reboot": Action.DESKTOP_REBOOTED,
}


def _power(*, actor, desktop: Desktop, verb: str) -> Desktop:
    _require_manage(actor, desktop)
    action = _VERB_ACTIONS[verb]
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        getattr(desktop, verb)()
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_power", desktop.pk, verb, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        event_record(action=action, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


def desktop_start(*, actor, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="start")


def desktop_stop(*, actor, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="stop")


def desktop_reboot(*, actor, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="reboot")


def desktop_reset(*, actor, desktop: Desktop) -> Desktop:
    """Put a fresh linked clone of the golden image in place of the system disk (the VM stops first)."""
    _require_manage(actor, desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        if desktop.image_version is None:
            raise InvalidInput(_("接管的虚拟机没有黄金镜像，不能重置。"), code="desktop_not_resettable")
        desktop.occupy(action=_("重置"))
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_reset", desktop.pk, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        event_record(action=Action.DESKTOP_RESET, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


@retry_on_deadlock
def desktop_resize(*, actor, desktop: Desktop, flavor: Flavor) -> Desktop:
    """Give a stopped desktop another flavor's vCPU, memory and GPU profile (its system disk keeps its size).

    Only the growth is checked against the quotas (the desktop already holds its current
    share); the hypervisor change runs in a task, and the desktop's sizes, quota share and
    metering change when it has happened.
    """
    _require_manage(actor, desktop)
    if not selectors.flavor_usable_by_tenant(flavor, tenant=desktop.tenant):
        raise InvalidInput(_("未知规格。"), code="flavor_not_found")
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        if (desktop.vcpus, desktop.memory_mib, desktop.gpus, desktop.flavor_id) == (
            flavor.vcpus,
            flavor.memory_mib,
            flavor.gpus,
            flavor.pk,
        ):
            raise InvalidInput(_("桌面已经是这个规格。"), code="desktop_same_flavor")
        desktop.begin_resize()
        gpu_device = place_resize(desktop=desktop, flavor=flavor)
        hold = quota.resize_quota_hold(
            actor=actor, desktop=desktop, vcpus=flavor.vcpus, memory_mib=flavor.memory_mib, gpus=flavor.gpus
        )
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_resize",
            desktop.pk,
            flavor.pk,
            gpu_device,
            hold,
            queue=desktop.endpoint.site.celery_queue,
        )
        desktop.save()
        event_record(
            action=Action.DESKTOP_RESIZED,
            actor=actor,
            target=desktop,
            tenant=desktop.tenant,
            detail={
                "desktop": desktop.pk,
                "from": {
                    "flavor": desktop.flavor.name if desktop.flavor_id else "",
                    "vcpus": desktop.vcpus,
                    "memory_mib": desktop.memory_mib,
                    "gpus": desktop.gpus,
                },
                "to": {
                    "flavor": flavor.name,
                    "vcpus": flavor.vcpus,
                    "memory_mib": flavor.memory_mib,
                    "gpus": flavor.gpus,
                },
            },
        )
    return desktop


@retry_on_deadlock
def desktop_resize_finish(*, desktop_id: int, flavor_id: int, gpu_device: str, hold: str, info: VMInfo) -> Desktop:
    """The hypervisor applied the flavor: new sizes, the quota share swapped, metering told."""
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop_id)
        if desktop.state != Desktop.State.BUSY:
            return desktop
        desktop.resized(flavor=Flavor.objects.select_related("gpu_profile").get(pk=flavor_id), gpu_device=gpu_device)
        desktop.quota_reservation = quota.resize_quota_settle(desktop=desktop, hold=hold)
        _apply_vm_info(desktop, info)
        desktop.settle(power=POWER.get(str(info.power_state), Desktop.Power.UNKNOWN))
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="resized")
    return desktop


def desktop_resize_fail(*, desktop_id: int, hold: str, error: str) -> Desktop:
    """The hypervisor refused: the growth held for the resize goes back, the desktop as it was."""
    with transaction.atomic():
        quota.resize_quota_release(hold=hold)
        return desktop_operation_fail(desktop_id=desktop_id, error=error)


@retry_on_deadlock
def desktop_retry(*, actor, desktop: Desktop) -> Desktop:
    """Provision a desktop in error again (its VM, if half made, is reused or recreated)."""
    _require_manage(actor, desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        if desktop.state != Desktop.State.ERROR:
            desktop._require(Desktop.State.ERROR, action=_("重试"))
        if not desktop.quota_reservation:
            desktop.quota_reservation = quota.desktop_quota_reserve(
                actor=actor,
                tenant=desktop.tenant,
                course=desktop.course,
                owner=desktop.owner,
                vcpus=desktop.vcpus,
                memory_mib=desktop.memory_mib,
                disk_gib=desktop.disk_gib,
                gpus=desktop.gpus,
            )
        desktop.provision()
        desktop.attempts = 0
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_provision", desktop.pk, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="retried")
        event_record(action=Action.DESKTOP_RETRIED, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


@retry_on_deadlock
def desktop_delete(*, actor, desktop: Desktop) -> Desktop:
    _require_manage(actor, desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        desktop.begin_deletion()
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_destroy", desktop.pk, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        event_record(action=Action.DESKTOP_DELETED, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


# --- what tasks report back ---------------------------------------------------------------


def _apply_vm_info(desktop: Desktop, info: VMInfo) -> None:
    desktop.vm_uuid = info.uuid or desktop.vm_uuid
    desktop.vnc_host = info.vnc_host
    desktop.vnc_port = info.vnc_port
    if info.nics:
        desktop.mac = info.nics[0].mac
        desktop.guest_ip = info.nics[0].ip or desktop.guest_ip
    desktop.hardware = {
        "disks": [{"target": d.target, "size_bytes": d.size_bytes, "volume": d.volume} for d in info.disks],
        "nics": [{"mac": n.mac, "network": n.network, "ip": n.ip} for n in info.nics],
    }


@retry_on_deadlock
def desktop_provision_finish(*, desktop_id: int, info: VMInfo) -> Desktop:
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop_id)
        if desktop.state != Desktop.State.PROVISIONING:
            return desktop
        _apply_vm_info(desktop, info)
        desktop.provisioned(running=info.power_state == "running")
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="provisioned")
        quota.desktop_quota_commit(reservation_id=desktop.quota_reservation)
        event_record(action=Action.DESKTOP_PROVISIONED, target=desktop, tenant=desktop.tenant)
    return desktop


@retry_on_deadlock
def desktop_note_error(*, desktop_id: int, error: str) -> None:
    """A transient failure: keep the state, remember the error and count the attempt."""
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop_id)
        desktop.last_error = error[:2000]
        desktop.attempts += 1
        desktop.save(update_fields=["last_error", "attempts", "updated_at"])


@retry_on_deadlock
def desktop_operation_fail(*, desktop_id: int, error: str) -> Desktop:
    """An operation failed for good. Provisioning ends in error with the quota released;
    deletion ends in error (the VM may be there); other operations return the desktop to
    where it was with the error noted."""
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop_id)
        state = desktop.state
        if state == Desktop.State.PROVISIONING:
            desktop.fail(reason=error[:2000])
            quota.desktop_quota_release(reservation_id=desktop.quota_reservation)
            desktop.quota_reservation = ""
        elif state == Desktop.State.DELETING:
            desktop.fail(reason=error[:2000])
        elif state in Desktop.TRANSIENT:
            desktop.abandon(reason=error[:2000])
        else:
            return desktop
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="failed")
        event_record(
            action=Action.DESKTOP_FAILED,
            target=desktop,
            tenant=desktop.tenant,
            result="failure",
            reason=error[:500],
            detail={"during": state},
        )
    return desktop


@retry_on_deadlock
def desktop_settle(*, desktop_id: int, info: VMInfo | None = None, power: str = "", reason: str = "settled") -> Desktop:
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop_id)
        if desktop.state not in Desktop.TRANSIENT or desktop.state in (
            Desktop.State.PROVISIONING,
            Desktop.State.DELETING,
        ):
            return desktop
        if info is not None:
            _apply_vm_info(desktop, info)
            power = info.power_state
        desktop.settle(power=POWER.get(str(power), Desktop.Power.UNKNOWN))
        if desktop.power_state != Desktop.Power.RUNNING:
            desktop.vnc_port = None
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason=reason)
    return desktop


@retry_on_deadlock
def desktop_destroy_finish(*, desktop_id: int) -> Desktop:
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop_id)
        if desktop.state != Desktop.State.DELETING:
            return desktop
        desktop.deleted()
        desktop.save()
        desktop.snapshots.exclude(state=Snapshot.State.DELETED).update(state=Snapshot.State.DELETED)
        # Its data disks went with it (the task deleted them): their disk quota comes back.
        for volume in desktop.volumes.select_for_update().exclude(state=Volume.State.DELETED):
            quota.desktop_quota_release(reservation_id=volume.quota_reservation)
            volume.state = Volume.State.DELETED
            volume.save(update_fields=["state"])
            hooks.volume_changed(volume=volume, reason="deleted")
        quota.desktop_quota_release(reservation_id=desktop.quota_reservation)
        desktop.quota_reservation = ""
        desktop.save(update_fields=["quota_reservation"])
        hooks.desktop_changed(desktop=desktop, reason="deleted")
    return desktop


# --- snapshots -----------------------------------------------------------------------------

SNAPSHOT_NAME_RE = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9_.\-\u4e00-\u9fff]{0,63}$")


def snapshot_create(*, actor, desktop: Desktop, name: str, description: str = "") -> Snapshot:
    _require_manage(actor, desktop)
    if not SNAPSHOT_NAME_RE.match(name or ""):
        raise InvalidInput(_("快照名称只能包含中文、字母、数字、点、横线和下划线。"), code="snapshot_name_invalid")
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        if desktop.snapshots.filter(name=name).exclude(state=Snapshot.State.DELETED).exists():
            raise Conflict(_("已有同名快照。"), code="snapshot_name_taken")
        desktop.snapshots.filter(name=name, state=Snapshot.State.DELETED).delete()
        desktop.occupy(action=_("创建快照"))
        snapshot = Snapshot.objects.create(desktop=desktop, name=name, description=description, created_by=actor)
        desktop.task_id = snapshot.task_id = enqueue(
            "compute.tasks.snapshots.snapshot_run", snapshot.pk, "create", queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        snapshot.save(update_fields=["task_id"])
        event_record(
            action=Action.SNAPSHOT_CREATED,
            actor=actor,
            target=snapshot,
            tenant=desktop.tenant,
            detail={"desktop": desktop.pk},
        )
    return snapshot


def _snapshot_operation(*, actor, snapshot: Snapshot, op: str, action: str, label: str) -> Snapshot:
    _require_manage(actor, snapshot.desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(snapshot.desktop_id)
        snapshot = Snapshot.objects.locked(snapshot.pk)
        if snapshot.state != Snapshot.State.READY:
            raise Conflict(_("快照当前不可用。"), code="snapshot_not_ready", detail={"state": snapshot.state})
        desktop.occupy(action=label)
        snapshot.state = Snapshot.State.REVERTING if op == "revert" else Snapshot.State.DELETING
        desktop.task_id = snapshot.task_id = enqueue(
            "compute.tasks.snapshots.snapshot_run", snapshot.pk, op, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        snapshot.save()
        event_record(action=action, actor=actor, target=snapshot, tenant=desktop.tenant, detail={"desktop": desktop.pk})
    return snapshot


def snapshot_revert(*, actor, snapshot: Snapshot) -> Snapshot:
    return _snapshot_operation(
        actor=actor, snapshot=snapshot, op="revert", action=Action.SNAPSHOT_REVERTED, label=_("恢复快照")
    )


def snapshot_delete(*, actor, snapshot: Snapshot) -> Snapshot:
    return _snapshot_operation(
        actor=actor, snapshot=snapshot, op="delete", action=Action.SNAPSHOT_DELETED, label=_("删除快照")
    )


def snapshot_finish(*, snapshot_id: int, op: str, info: VMInfo | None, error: str = "") -> Snapshot:
    with transaction.atomic():
        snapshot = Snapshot.objects.locked(snapshot_id)
        if error:
            snapshot.last_error = error[:2000]
            snapshot.state = Snapshot.State.ERROR if op == "create" else Snapshot.State.READY
        elif op == "delete":
            snapshot.state = Snapshot.State.DELETED
        else:
            snapshot.state = Snapshot.State.READY
            snapshot.last_error = ""
        snapshot.save()
    if error:
        desktop_operation_fail(desktop_id=snapshot.desktop_id, error=error)
    else:
        desktop_settle(desktop_id=snapshot.desktop_id, info=info)
    return snapshot


# --- data disks ------------------------------------------------------------------------------


def _volume_task(volume: Volume, op: str, endpoint: Endpoint) -> str:
    return enqueue("compute.tasks.volumes.volume_run", volume.pk, op, queue=endpoint.site.celery_queue)


def volume_attach(*, actor, desktop: Desktop, size_gib: int, name: str = "") -> Volume:
    """A new data disk for the desktop: its size is reserved from the disk quota until the disk is deleted."""
    _require_manage(actor, desktop)
    if not 1 <= int(size_gib) <= 2048:
        raise InvalidInput(_("数据盘容量必须在 1 到 2048 GiB 之间。"), code="volume_size_invalid")
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        desktop.occupy(action=_("挂载数据盘"))
        reservation = quota.volume_quota_reserve(
            actor=actor, tenant=desktop.tenant, owner=desktop.owner, size_gib=int(size_gib)
        )
        libvirt = desktop.endpoint.kind == Endpoint.Kind.LIBVIRT
        volume = Volume.objects.create(
            desktop=desktop,
            tenant=desktop.tenant,
            owner=desktop.owner,
            endpoint=desktop.endpoint,
            name=(name or f"data-{desktop.volumes.count() + 1}")[:64],
            size_gib=size_gib,
            pool=desktop.storage_pool,
            # Named after nobody's VM: the disk may move to another desktop and outlive this one.
            volume_name=f"cc-vol-{desktop.tenant.slug[:12]}-{secrets.token_hex(5)}.qcow2" if libvirt else "",
            quota_reservation=reservation,
        )
        desktop.task_id = volume.task_id = _volume_task(volume, "attach", desktop.endpoint)
        desktop.save()
        volume.save(update_fields=["task_id"])
        hooks.volume_changed(volume=volume, reason="created")
        event_record(
            action=Action.VOLUME_ATTACHED,
            actor=actor,
            target=volume,
            tenant=desktop.tenant,
            detail={"desktop": desktop.pk, "size_gib": size_gib, "new": True},
        )
    return volume


def volume_attach_existing(*, actor, desktop: Desktop, volume: Volume) -> Volume:
    """Attach a detached data disk of the same tenant (and endpoint, where it lives) to the desktop."""
    _require_manage(actor, desktop)
    if not selectors.volume_manageable_by(actor, volume) or volume.tenant_id != desktop.tenant_id:
        raise NotFound(_("数据盘不存在。"), code="volume_not_found")
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        volume = Volume.objects.locked(volume.pk)
        if volume.state != Volume.State.DETACHED or volume.desktop_id is not None:
            raise Conflict(_("数据盘正在使用中。"), code="volume_in_use", detail={"state": volume.state})
        if volume.endpoint_id != desktop.endpoint_id:
            raise InvalidInput(
                _("数据盘在另一个虚拟化端点上，只能挂载到同一端点的桌面。"), code="volume_other_endpoint"
            )
        desktop.occupy(action=_("挂载数据盘"))
        volume.desktop = desktop
        volume.state = Volume.State.ATTACHING
        volume.last_error = ""
        desktop.task_id = volume.task_id = _volume_task(volume, "attach", desktop.endpoint)
        desktop.save()
        volume.save()
        hooks.volume_changed(volume=volume, reason="attaching")
        event_record(
            action=Action.VOLUME_ATTACHED,
            actor=actor,
            target=volume,
            tenant=desktop.tenant,
            detail={"desktop": desktop.pk, "size_gib": volume.size_gib, "new": False},
        )
    return volume


def volume_detach(*, actor, volume: Volume) -> Volume:
    """Take a data disk off its desktop. On libvirt the disk is kept (detached) to attach elsewhere or
    delete; on vCenter a disk is a file of its VM and goes with it."""
    _require_manage(actor, volume.desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(volume.desktop_id)
        volume = Volume.objects.locked(volume.pk)
        if volume.state not in (Volume.State.ATTACHED, Volume.State.ERROR):
            raise Conflict(_("数据盘当前不能卸载。"), code="volume_not_attached", detail={"state": volume.state})
        desktop.occupy(action=_("卸载数据盘"))
        volume.state = Volume.State.DETACHING
        desktop.task_id = volume.task_id = _volume_task(volume, "detach", desktop.endpoint)
        desktop.save()
        volume.save()
        hooks.volume_changed(volume=volume, reason="detaching")
        event_record(
            action=Action.VOLUME_DETACHED,
            actor=actor,
            target=volume,
            tenant=desktop.tenant,
            detail={"desktop": desktop.pk},
        )
    return volume


def volume_delete(*, actor, volume: Volume) -> Volume:
    """Delete a detached data disk for good; its disk quota is released when it is gone."""
    if not selectors.volume_manageable_by(actor, volume):
        raise Forbidden(_("您不能删除这块数据盘。"), code="volume_read_only")
    with transaction.atomic():
        volume = Volume.objects.select_related("endpoint__site").select_for_update().get(pk=volume.pk)
        if volume.state not in (Volume.State.DETACHED, Volume.State.ERROR) or volume.desktop_id is not None:
            raise Conflict(_("数据盘仍挂载在桌面上，请先卸载。"), code="volume_in_use", detail={"state": volume.state})
        volume.state = Volume.State.DELETING
        volume.task_id = _volume_task(volume, "delete", volume.endpoint)
        volume.save()
        hooks.volume_changed(volume=volume, reason="deleting")
        event_record(
            action=Action.VOLUME_DELETED,
            actor=actor,
            target=volume,
            tenant=volume.tenant,
            detail={"deleted": True, "size_gib": volume.size_gib},
        )
    return volume


def volume_finish(
    *, volume_id: int, op: str, target: str = "", path: str = "", volume_name: str = "", error: str = ""
) -> Volume:
    with transaction.atomic():
        volume = Volume.objects.select_related("endpoint").select_for_update().get(pk=volume_id)
        desktop_id = volume.desktop_id
        if error:
            volume.last_error = error[:2000]
            # A disk that could not be deleted is still there (and still detached).
            volume.state = Volume.State.DETACHED if op == "delete" else Volume.State.ERROR
        elif op == "attach":
            volume.state, volume.target, volume.path = Volume.State.ATTACHED, target, path
            volume.volume_name = volume_name or volume.volume_name
            volume.last_error = ""
            quota.desktop_quota_commit(reservation_id=volume.quota_reservation)
        elif op == "detach" and volume.endpoint_id and volume.endpoint.kind == Endpoint.Kind.LIBVIRT:
            volume.state, volume.desktop, volume.target = Volume.State.DETACHED, None, ""
        else:  # deleted, or detached from a vCenter VM (which destroys the disk file)
            volume.state, volume.desktop, volume.target = Volume.State.DELETED, None, ""
            quota.desktop_quota_release(reservation_id=volume.quota_reservation)
        volume.save()
        hooks.volume_changed(
            volume=volume,
            reason=f"{op}_failed" if error else volume.state,
            desktop_id=desktop_id if volume.desktop_id is None else None,
        )
    if desktop_id is None:
        return volume
    if error:
        desktop_operation_fail(desktop_id=desktop_id, error=error)
    else:
        desktop_settle(
            desktop_id=desktop_id,
            power=_stable_power(desktop_id),
            reason="volume_attached" if op == "attach" else "volume_detached",
        )
    return volume


def _stable_power(desktop_id: int) -> str:
    stable = Desktop.objects.filter(pk=desktop_id).values_list("stable_state", flat=True).first()
    return Desktop.Power.RUNNING if stable == Desktop.State.RUNNING else Desktop.Power.STOPPED

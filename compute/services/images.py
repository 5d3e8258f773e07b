"""Writes of golden images and flavors: images, their versions (registered, uploaded, vCenter templates,
retired) and flavors."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common import limits
from common.errors import Conflict, InvalidInput
from common.tasks import enqueue
from compute import locks
from compute.drivers.base import DriverError
from compute.errors import ComputeError
from compute.hypervisor import driver_open
from compute.models import Desktop, Endpoint, Flavor, GpuProfile, Image, ImageVersion, StoragePool, Visibility
from compute.models.images import validate_host_path
from compute.services.rules import driver_error_message

if TYPE_CHECKING:
    from tenants.models import Course, Tenant, User


def image_create(
    *,
    actor: User,
    name: str,
    visibility: str = Visibility.PLATFORM,
    tenant: Tenant | None = None,
    course: Course | None = None,
    os_type: str = "",
    description: str = "",
    kernel_path: str = "",
    initrd_path: str = "",
    kernel_cmdline: str = "",
) -> Image:
    """A new golden image; with ``kernel_path`` its desktops boot that kernel directly (and
    ``initrd_path``, ``kernel_cmdline``), files every host of its desktops has."""
    if not name:
        raise InvalidInput(_("请填写镜像名称。"), code=ComputeError.IMAGE_NAME_MISSING)
    _check_boot(kernel_path, initrd_path, kernel_cmdline)
    if visibility == Visibility.TENANT and tenant is None:
        raise InvalidInput(_("租户可见的镜像需要指定租户。"), code=ComputeError.IMAGE_TENANT_MISSING)
    if visibility == Visibility.COURSE and course is None:
        raise InvalidInput(_("课程可见的镜像需要指定课程。"), code=ComputeError.IMAGE_COURSE_MISSING)
    with transaction.atomic():
        image = Image.objects.create(
            name=name,
            visibility=visibility,
            tenant=tenant if visibility == Visibility.TENANT else (course.tenant if course else None),
            course=course if visibility == Visibility.COURSE else None,
            os_type=os_type,
            description=description,
            kernel_path=kernel_path,
            initrd_path=initrd_path,
            kernel_cmdline=kernel_cmdline,
        )
        detail = {"visibility": visibility, **({"kernel_path": kernel_path} if kernel_path else {})}
        event_record(action=Action.IMAGE_CREATED, actor=actor, target=image, detail=detail)
    return image


def _check_boot(kernel_path: str, initrd_path: str, kernel_cmdline: str) -> None:
    for path in (kernel_path, initrd_path):
        try:
            validate_host_path(path)
        except ValidationError as exc:
            code = ComputeError.IMAGE_BOOT_PATH_INVALID
            raise InvalidInput(exc.messages[0], code=code, detail={"path": path}) from None
    if (initrd_path or kernel_cmdline) and not kernel_path:
        raise InvalidInput(
            _("填写 initrd 或内核命令行时也要填写内核路径。"), code=ComputeError.IMAGE_BOOT_KERNEL_MISSING
        )
    if "\n" in kernel_cmdline or len(kernel_cmdline) > 1000:
        raise InvalidInput(_("内核命令行须为一行，最多 1000 个字符。"), code=ComputeError.IMAGE_BOOT_CMDLINE_INVALID)


def _next_version(image: Image) -> int:
    return (image.versions.aggregate(m=Max("version"))["m"] or 0) + 1


def image_version_register(
    *, actor: User, image: Image, endpoint: Endpoint, pool: str = "", volume: str = "", template: str = "", size_bytes=0
) -> ImageVersion:
    """Record a golden image already on the hypervisor (a volume in a pool, or a vCenter template)."""
    if endpoint.kind == Endpoint.Kind.LIBVIRT and not (pool and volume):
        raise InvalidInput(_("libvirt 镜像需要存储池和卷名。"), code=ComputeError.IMAGE_VOLUME_MISSING)
    if endpoint.kind == Endpoint.Kind.VCENTER and not template:
        raise InvalidInput(_("vCenter 镜像需要模板名。"), code=ComputeError.IMAGE_TEMPLATE_MISSING)
    with transaction.atomic():
        locks.image_lock(image.pk)  # the next version number is ours until the commit
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
        raise InvalidInput(
            _("无法检查镜像文件：%(error)s") % {"error": exc}, code=ComputeError.IMAGE_CHECK_FAILED
        ) from exc
    if proc.returncode != 0:
        raise InvalidInput(
            _("文件不是可用的磁盘镜像。"), code=ComputeError.IMAGE_BAD_FORMAT, detail={"reason": proc.stderr[-500:]}
        )
    info = json.loads(proc.stdout)
    fmt, size = info.get("format", ""), int(info.get("virtual-size", 0))
    if fmt not in ("qcow2", "raw"):
        raise InvalidInput(
            _("不支持的镜像格式“%(format)s”，只接受 qcow2、raw 或 ISO。") % {"format": fmt},
            code=ComputeError.IMAGE_BAD_FORMAT,
        )
    if info.get("backing-filename"):
        raise InvalidInput(_("镜像依赖其他文件（backing file），请先合并。"), code=ComputeError.IMAGE_HAS_BACKING_FILE)
    if size < 1024 * 1024:
        raise InvalidInput(_("镜像太小，不是可用的磁盘镜像。"), code=ComputeError.IMAGE_TOO_SMALL)
    return fmt, size


def upload_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "image-uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def image_upload(*, actor: User, image: Image, endpoint: Endpoint, path: str, pool: str = "") -> ImageVersion:
    """Accept an uploaded qcow2/raw/ISO file (checked with qemu-img) and import it into the endpoint's pool."""
    fmt, size = qemu_img_check(path)
    is_iso = path.lower().endswith(".iso")
    if endpoint.kind != Endpoint.Kind.LIBVIRT:
        raise InvalidInput(
            _("只能向 libvirt 端点上传镜像文件；vCenter 请导入模板。"), code=ComputeError.IMAGE_UPLOAD_UNSUPPORTED
        )
    pool = pool or (
        StoragePool.objects.filter(endpoint=endpoint).order_by("-is_default").values_list("name", flat=True).first()
        or ""
    )
    if not pool:
        raise InvalidInput(_("端点没有存储池。"), code=ComputeError.ENDPOINT_HAS_NO_POOL)
    with transaction.atomic():
        locks.image_lock(image.pk)  # the next version number is ours until the commit
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


def image_import_template(*, actor: User, image: Image, endpoint: Endpoint, template: str) -> ImageVersion:
    """Use a vCenter template as a new version of ``image`` after checking the template exists."""
    try:
        driver = driver_open(endpoint)
        try:
            templates = {t.name: t for t in driver.list_templates()}
        finally:
            driver.close()
    except DriverError as exc:
        raise InvalidInput(
            driver_error_message(exc), code=ComputeError.ENDPOINT_UNREACHABLE, detail={"reason": exc.message}
        )
    if template not in templates:
        raise InvalidInput(
            _("vCenter 中没有模板“%(name)s”。") % {"name": template}, code=ComputeError.IMAGE_TEMPLATE_NOT_FOUND
        )
    size = sum(d.size_bytes for d in templates[template].disks)
    return image_version_register(actor=actor, image=image, endpoint=endpoint, template=template, size_bytes=size)


def image_version_finish(*, version_id: int, error: str = "") -> ImageVersion:
    with transaction.atomic():
        version = locks.image_version_lock(version_id)
        version.imported(error=error[:2000])
        version.save(update_fields=["status", "last_error"])
    if not error and version.source_path:
        Path(version.source_path).unlink(missing_ok=True)
    return version


def flavor_create(
    *,
    actor: User,
    name: str,
    vcpus: int,
    memory_mib: int,
    disk_gib: int,
    gpu_profile: GpuProfile | None = None,
    tenant: Tenant | None = None,
) -> Flavor:
    if vcpus < 1 or memory_mib < 64 or disk_gib < 1:
        raise InvalidInput(_("规格的 CPU、内存和磁盘必须为正数。"), code=ComputeError.FLAVOR_INVALID)
    limits.check_size(vcpus, field="vcpus", minimum=1, maximum=limits.VCPUS_MAX)
    limits.check_size(memory_mib, field="memory_mib", minimum=limits.MEMORY_MIB_MIN, maximum=limits.MEMORY_MIB_MAX)
    limits.check_size(disk_gib, field="disk_gib", minimum=1, maximum=limits.DISK_GIB_MAX)
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
            raise Conflict(_("规格名称“%(name)s”已被使用。") % {"name": name}, code=ComputeError.FLAVOR_NAME_TAKEN)
        event_record(action=Action.FLAVOR_CHANGED, actor=actor, target=flavor, detail={"created": True})
    return flavor


def flavor_update(
    *,
    actor: User,
    flavor: Flavor,
    name: str,
    vcpus: int,
    memory_mib: int,
    disk_gib: int,
    gpu_profile: GpuProfile | None = None,
    is_active: bool = True,
) -> Flavor:
    """Change a flavor for the desktops made from now on (existing desktops keep their sizes)."""
    if vcpus < 1 or memory_mib < 64 or disk_gib < 1:
        raise InvalidInput(_("规格的 CPU、内存和磁盘必须为正数。"), code=ComputeError.FLAVOR_INVALID)
    with transaction.atomic():
        flavor = locks.flavor_lock(flavor.pk)
        if Flavor.objects.filter(name=name).exclude(pk=flavor.pk).exists():
            raise Conflict(_("规格名称“%(name)s”已被使用。") % {"name": name}, code=ComputeError.FLAVOR_NAME_TAKEN)
        before = {
            "name": flavor.name,
            "vcpus": flavor.vcpus,
            "memory_mib": flavor.memory_mib,
            "disk_gib": flavor.disk_gib,
        }
        flavor.name, flavor.vcpus, flavor.memory_mib, flavor.disk_gib = name, vcpus, memory_mib, disk_gib
        flavor.gpu_profile, flavor.is_active = gpu_profile, is_active
        flavor.save()
        event_record(action=Action.FLAVOR_CHANGED, actor=actor, target=flavor, detail={"before": before})
    return flavor


def _used_by_desktops(version: ImageVersion) -> bool:
    return Desktop.objects.filter(image_version=version).exclude(state=Desktop.State.DELETED).exists()


def image_version_retire(
    *,
    actor: User | None,
    version: ImageVersion,
    tenant: Tenant | None = None,
    in_use: Callable[[ImageVersion], bool] | None = None,
) -> ImageVersion:
    """Retire a version: no desktop is made from it any more (``desktop_create`` reads its status under a
    shared lock, so one being made from it now is made first, and this waits for it).

    Refused while a desktop that is not deleted uses it, or while ``in_use(version)`` (asked under the
    version's lock) says something else still does: the classroom's pools, whose next reset needs it.
    ``actor`` None is the platform; ``tenant`` is whose audit trail the retirement belongs to. The
    golden volume stays: deleting it is the caller's next step (``image_version_volume_deleted``).
    """
    with transaction.atomic():
        version = locks.image_version_lock(version.pk)
        version.retire()
        if _used_by_desktops(version) or (in_use is not None and in_use(version)):
            raise Conflict(_("镜像版本仍在使用中，不能停用。"), code=ComputeError.IMAGE_VERSION_IN_USE)
        version.save(update_fields=["status"])
        event_record(
            action=Action.IMAGE_VERSION_RETIRED,
            actor=actor,
            target=version,
            tenant=tenant,
            detail={"volume": version.volume, "pool": version.pool},
        )
    return version


def image_version_volume_deleted(
    *, version_id: int, tenant: Tenant | None = None, error: str = "", kept: str = ""
) -> ImageVersion:
    """What deleting a retired version's golden volume came to: deleted, kept (``kept`` says why: it is
    still the backing file of a disk) or failed (``error``, also kept on the version); audited."""
    with transaction.atomic():
        version = locks.image_version_lock(version_id)
        if error:
            version.last_error = error[:2000]
            version.save(update_fields=["last_error"])
        event_record(
            action=Action.IMAGE_VOLUME_DELETED,
            target=version,
            tenant=tenant,
            result="failure" if error or kept else "success",
            reason=(error or kept)[:500],
            detail={
                "step": "image_volume_deleted" if not (error or kept) else "image_volume_kept",
                "volume": version.volume,
                "pool": version.pool,
            },
        )
    return version

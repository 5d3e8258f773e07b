"""Golden images, their versions (a volume in a pool or a vCenter template) and flavors."""

import posixpath

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager
from common.errors import InvalidTransition
from compute.errors import ComputeError
from compute.models.inventory import Endpoint, GpuProfile


class Visibility(models.TextChoices):
    PLATFORM = "platform", _("全平台")
    TENANT = "tenant", _("本租户")
    COURSE = "course", _("课程")


def validate_host_path(value: str) -> None:
    """A file on the hypervisor host: an absolute, normalised path (no "..", no relative path)."""
    if value and (not value.startswith("/") or posixpath.normpath(value) != value or "\n" in value):
        raise ValidationError(
            _("“%(path)s”不是主机上的绝对路径（以 / 开头，不含 ..）。"),
            code=ComputeError.IMAGE_BOOT_PATH_INVALID,
            params={"path": value},
        )


class Image(models.Model):
    name = models.CharField(_("名称"), max_length=100)
    os_type = models.CharField(_("操作系统"), max_length=50, blank=True)
    description = models.TextField(_("说明"), blank=True)
    visibility = models.CharField(_("可见范围"), max_length=10, choices=Visibility.choices, default=Visibility.PLATFORM)
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("租户"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    course = models.ForeignKey(
        "tenants.Course", verbose_name=_("课程"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_active = models.BooleanField(_("启用"), default=True)
    # Direct kernel boot (as OpenStack's kernel_id/ramdisk_id/os_command_line): files on every host
    # that runs the image's desktops (shared storage); empty: the disk's own boot loader.
    kernel_path = models.CharField(
        _("内核路径"),
        max_length=500,
        blank=True,
        validators=[validate_host_path],
        help_text=_("主机上的绝对路径；填写后桌面直接从此内核启动"),
    )
    initrd_path = models.CharField(_("initrd 路径"), max_length=500, blank=True, validators=[validate_host_path])
    kernel_cmdline = models.CharField(_("内核命令行"), max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("镜像")
        verbose_name_plural = _("镜像")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(visibility="platform")
                | models.Q(visibility="tenant", tenant__isnull=False)
                | models.Q(visibility="course", course__isnull=False),
                name="image_visibility_has_owner",
            )
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if (self.initrd_path or self.kernel_cmdline) and not self.kernel_path:
            raise ValidationError({"kernel_path": _("填写 initrd 或内核命令行时也要填写内核路径。")})


class ImageVersion(models.Model):
    """One golden image: a qcow2/raw volume in an endpoint's pool, or a vCenter template."""

    class Format(models.TextChoices):
        QCOW2 = "qcow2", "qcow2"
        RAW = "raw", "raw"
        ISO = "iso", "ISO"
        TEMPLATE = "template", _("vCenter 模板")

    class Status(models.TextChoices):
        PENDING = "pending", _("导入中")
        READY = "ready", _("可用")
        FAILED = "failed", _("失败")
        RETIRED = "retired", _("已停用")

    image = models.ForeignKey(Image, verbose_name=_("镜像"), on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField(_("版本"))
    endpoint = models.ForeignKey(Endpoint, verbose_name=_("端点"), on_delete=models.PROTECT, related_name="images")
    pool = models.CharField(_("存储池"), max_length=100, blank=True)
    volume = models.CharField(_("卷"), max_length=255, blank=True)
    template = models.CharField(_("模板"), max_length=255, blank=True)
    format = models.CharField(_("格式"), max_length=10, choices=Format.choices, default=Format.QCOW2)
    size_bytes = models.PositiveBigIntegerField(_("虚拟大小"), default=0)
    status = models.CharField(_("状态"), max_length=10, choices=Status.choices, default=Status.PENDING)
    last_error = models.TextField(_("最近错误"), blank=True)
    source_path = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("镜像版本")
        verbose_name_plural = _("镜像版本")
        ordering = ["image", "-version"]
        constraints = [models.UniqueConstraint(fields=["image", "version"], name="imageversion_unique")]

    def __str__(self):
        return self.label(self.image.name, self.version)

    @staticmethod
    def label(image_name: str, version: int) -> str:
        """How a version is named to people: "Ubuntu 22.04 v3"."""
        return f"{image_name} v{version}"

    @property
    def size_gib(self) -> int:
        return -(-self.size_bytes // 1024**3)

    def imported(self, *, error: str = "") -> None:
        """The upload's import into the pool ended: ready, or failed with the reason."""
        self.status = self.Status.FAILED if error else self.Status.READY
        self.last_error = error

    def retire(self) -> None:
        """No new desktop is made from this version any more (those made from it keep it)."""
        if self.status not in (self.Status.READY, self.Status.FAILED):
            raise InvalidTransition(
                _("镜像版本当前为“%(status)s”，不能停用。") % {"status": self.get_status_display()},
                code=ComputeError.IMAGE_VERSION_INVALID_TRANSITION,
                detail={"status": self.status},
            )
        self.status = self.Status.RETIRED


class Flavor(models.Model):
    name = models.CharField(_("名称"), max_length=100, unique=True)
    vcpus = models.PositiveSmallIntegerField(_("vCPU"), validators=[MinValueValidator(1)])
    memory_mib = models.PositiveIntegerField(_("内存 (MiB)"), validators=[MinValueValidator(64)])
    disk_gib = models.PositiveIntegerField(_("系统盘 (GiB)"), validators=[MinValueValidator(1)])
    gpu_profile = models.ForeignKey(
        GpuProfile, verbose_name=_("GPU 规格"), null=True, blank=True, on_delete=models.PROTECT, related_name="flavors"
    )
    # Empty: every tenant may use it.
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("租户"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("规格")
        verbose_name_plural = _("规格")
        ordering = ["vcpus", "memory_mib", "name"]

    def __str__(self):
        return self.name

    @property
    def gpus(self) -> int:
        return self.gpu_profile.gpus if self.gpu_profile_id else 0

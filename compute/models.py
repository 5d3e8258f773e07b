"""Compute inventory and desktops: sites, endpoints, clusters, hosts, images, flavors, desktops.

Lifecycle changes are verbs on the models (``Desktop.provision()``, ``Volume.begin_detach()``,
``Snapshot.finished()``...): they check the state machine and change fields, nothing else.
Services call them under the row's lock (``compute.locks``) and save.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager
from common.errors import Conflict, InvalidInput, InvalidTransition
from compute.errors import ComputeError


def _fernet() -> Fernet:
    """Fernet keyed by FIELD_ENCRYPTION_KEY (or, failing that, derived from SECRET_KEY)."""
    material = settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY
    try:
        return Fernet(material.encode())
    except (ValueError, TypeError):
        # Not a Fernet key itself: derive one, so any long random string works as a key.
        digest = hashlib.sha256(b"campuscloud-field-encryption:" + material.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def secret_encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def secret_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # The key changed: the credentials must be entered again; never guess.
        return ""


class Site(models.Model):
    """A campus or data centre. Its hypervisor work may go to its own Celery queue."""

    slug = models.SlugField(_("标识"), max_length=50, unique=True)
    name = models.CharField(_("名称"), max_length=100)
    # Empty: the shared "hypervisor" queue. A campus running its own workers sets "site.<slug>".
    queue = models.CharField(_("Celery 队列"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("站点")
        verbose_name_plural = _("站点")
        ordering = ["slug"]

    def __str__(self):
        return self.name

    @property
    def celery_queue(self) -> str:
        return self.queue or "hypervisor"


class Cluster(models.Model):
    class Kind(models.TextChoices):
        GENERAL = "general", _("通用")
        GPU = "gpu", _("GPU 仿真")
        BAREMETAL = "baremetal", _("裸金属")

    class Policy(models.TextChoices):
        SPREAD = "spread", _("分散")
        PACK = "pack", _("集中")

    site = models.ForeignKey(Site, verbose_name=_("站点"), on_delete=models.PROTECT, related_name="clusters")
    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices, default=Kind.GENERAL)
    policy = models.CharField(_("放置策略"), max_length=10, choices=Policy.choices, default=Policy.SPREAD)
    cpu_overcommit = models.DecimalField(_("CPU 超分比"), max_digits=4, decimal_places=1, default=16)
    memory_overcommit = models.DecimalField(_("内存超分比"), max_digits=4, decimal_places=1, default=1)

    class Meta:
        verbose_name = _("集群")
        verbose_name_plural = _("集群")
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="cluster_unique_name")]

    def __str__(self):
        return self.name


class Endpoint(models.Model):
    """A hypervisor the portal drives: one libvirt URI or one vCenter."""

    class Kind(models.TextChoices):
        LIBVIRT = "libvirt", "libvirt"
        VCENTER = "vcenter", "vCenter"

    class DomainType(models.TextChoices):
        QEMU = "qemu", _("qemu（软件模拟）")
        KVM = "kvm", _("kvm（硬件加速）")

    class Status(models.TextChoices):
        OK = "ok", _("正常")
        UNREACHABLE = "unreachable", _("不可达")
        UNKNOWN = "unknown", _("未知")

    name = models.SlugField(_("名称"), max_length=64, unique=True)
    site = models.ForeignKey(Site, verbose_name=_("站点"), on_delete=models.PROTECT, related_name="endpoints")
    cluster = models.ForeignKey(Cluster, verbose_name=_("集群"), on_delete=models.PROTECT, related_name="endpoints")
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices)
    url = models.CharField(_("地址"), max_length=255)
    username = models.CharField(_("用户名"), max_length=150, blank=True)
    password_encrypted = models.TextField(blank=True, editable=False)
    domain_type = models.CharField(_("虚拟化类型"), max_length=8, choices=DomainType.choices, default=DomainType.KVM)
    max_concurrency = models.PositiveSmallIntegerField(
        _("最大并发操作数"), default=4, validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    # Retry policy of this endpoint's tasks: a remote campus may deserve more patience.
    max_retries = models.PositiveSmallIntegerField(_("最大重试次数"), default=5)
    retry_backoff = models.FloatField(_("重试退避基数（秒）"), default=2.0)
    # Driver options (vCenter datacenter/folder/resource pool/datastore; libvirt network).
    options = models.JSONField(_("驱动选项"), default=dict, blank=True)
    is_active = models.BooleanField(_("启用"), default=True)
    status = models.CharField(_("状态"), max_length=12, choices=Status.choices, default=Status.UNKNOWN)
    last_error = models.TextField(_("最近错误"), blank=True)
    last_checked_at = models.DateTimeField(_("最近检查"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("虚拟化端点")
        verbose_name_plural = _("虚拟化端点")
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def password(self) -> str:
        return secret_decrypt(self.password_encrypted)

    def set_password(self, value: str) -> None:
        self.password_encrypted = secret_encrypt(value)

    @property
    def default_network(self) -> str:
        return self.options.get("network", "default" if self.kind == self.Kind.LIBVIRT else "VM Network")

    def driver_options(self) -> dict:
        return {k: v for k, v in self.options.items() if k not in ("network",)}


class EndpointLease(models.Model):
    """One slot of an endpoint's concurrency limit, held by one task while it calls the hypervisor.

    Leases expire, so a worker killed mid-task frees its slot without anyone's help.
    """

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="leases")
    holder = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "holder"], name="lease_unique_holder")]

    def __str__(self):
        return f"{self.endpoint_id}:{self.holder}"


class Host(models.Model):
    """A hypervisor host (libvirt: the endpoint itself; vCenter: the endpoint's summed hosts)."""

    endpoint = models.ForeignKey(Endpoint, verbose_name=_("端点"), on_delete=models.CASCADE, related_name="hosts")
    name = models.CharField(_("名称"), max_length=255)
    cpus = models.PositiveIntegerField(_("CPU"), default=0)
    memory_mib = models.PositiveBigIntegerField(_("内存 (MiB)"), default=0)
    free_memory_mib = models.PositiveBigIntegerField(_("空闲内存 (MiB)"), default=0)
    hypervisor = models.CharField(_("虚拟化软件"), max_length=100, blank=True)
    # GPU devices on this host: PCI addresses (passthrough) or mdev UUIDs (vGPU).
    gpu_devices = models.JSONField(_("GPU 设备"), default=list, blank=True)
    is_active = models.BooleanField(_("启用"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("主机")
        verbose_name_plural = _("主机")
        constraints = [models.UniqueConstraint(fields=["endpoint", "name"], name="host_unique_name")]

    def __str__(self):
        return self.name


class StoragePool(models.Model):
    class Kind(models.TextChoices):
        LOCAL = "local", _("本地存储")
        DISTRIBUTED = "distributed", _("分布式存储")

    endpoint = models.ForeignKey(Endpoint, verbose_name=_("端点"), on_delete=models.CASCADE, related_name="pools")
    name = models.CharField(_("名称"), max_length=100, help_text=_("libvirt 存储池或 vCenter 数据存储"))
    kind = models.CharField(_("类型"), max_length=12, choices=Kind.choices, default=Kind.LOCAL)
    replicas = models.PositiveSmallIntegerField(
        _("副本数"), default=1, validators=[MinValueValidator(1), MaxValueValidator(6)]
    )
    is_default = models.BooleanField(_("默认"), default=False)

    class Meta:
        verbose_name = _("存储池")
        verbose_name_plural = _("存储池")
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "name"], name="pool_unique_name"),
            # Local storage keeps one copy; a distributed pool keeps 2-6 replicas.
            models.CheckConstraint(
                condition=(models.Q(kind="local", replicas=1) | models.Q(kind="distributed", replicas__gte=2))
                & models.Q(replicas__lte=6),
                name="pool_replicas_by_kind",
            ),
        ]

    def __str__(self):
        return f"{self.endpoint.name}/{self.name}"


class Visibility(models.TextChoices):
    PLATFORM = "platform", _("全平台")
    TENANT = "tenant", _("本租户")
    COURSE = "course", _("课程")


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
        return f"{self.image.name} v{self.version}"

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


class GpuProfile(models.Model):
    class Mode(models.TextChoices):
        PASSTHROUGH = "passthrough", _("直通")
        VGPU = "vgpu", "vGPU"

    name = models.CharField(_("名称"), max_length=100, unique=True)
    mode = models.CharField(_("模式"), max_length=12, choices=Mode.choices)
    vgpu_type = models.CharField(_("vGPU 类型"), max_length=100, blank=True)
    gpus = models.PositiveSmallIntegerField(_("GPU 数"), default=1)

    class Meta:
        verbose_name = _("GPU 规格")
        verbose_name_plural = _("GPU 规格")

    def __str__(self):
        return self.name


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


class Desktop(models.Model):
    """A desktop VM and its lifecycle.

    requested → provisioning → running ⇄ stopped → deleting → deleted; any step may
    end in error (with a readable reason), from which the desktop is retried or deleted.
    """

    class State(models.TextChoices):
        REQUESTED = "requested", _("已申请")
        PROVISIONING = "provisioning", _("创建中")
        RUNNING = "running", _("运行中")
        STOPPED = "stopped", _("已关机")
        STARTING = "starting", _("开机中")
        STOPPING = "stopping", _("关机中")
        REBOOTING = "rebooting", _("重启中")
        BUSY = "busy", _("操作中")
        DELETING = "deleting", _("删除中")
        DELETED = "deleted", _("已删除")
        ERROR = "error", _("错误")

    class Power(models.TextChoices):
        RUNNING = "running", _("运行")
        STOPPED = "stopped", _("关闭")
        PAUSED = "paused", _("暂停")
        UNKNOWN = "unknown", _("未知")

        @classmethod
        def of(cls, state) -> "Desktop.Power":
            """The power state a driver reports ("running", "stopped", ...), as the desktop records it."""
            return cls(str(state)) if str(state) in cls.values else cls.UNKNOWN

    TRANSIENT = (State.PROVISIONING, State.STARTING, State.STOPPING, State.REBOOTING, State.BUSY, State.DELETING)
    LIVE = (State.RUNNING, State.STOPPED)
    # The power verbs: the state each starts from, the state the desktop is in until the hypervisor
    # has done it, and its name in a refusal. Services, tasks and views take the verbs from here.
    POWER_VERBS = {
        "start": (State.STOPPED, State.STARTING, _("开机")),
        "stop": (State.RUNNING, State.STOPPING, _("关机")),
        "reboot": (State.RUNNING, State.REBOOTING, _("重启")),
    }

    name = models.CharField(_("名称"), max_length=100)
    vm_name = models.CharField(_("虚拟机名"), max_length=100)
    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("使用者"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="desktops",
    )
    course = models.ForeignKey(
        "tenants.Course",
        verbose_name=_("课程"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="desktops",
    )
    image_version = models.ForeignKey(
        ImageVersion,
        verbose_name=_("镜像版本"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="desktops",
    )
    flavor = models.ForeignKey(
        Flavor, verbose_name=_("规格"), null=True, blank=True, on_delete=models.PROTECT, related_name="desktops"
    )
    endpoint = models.ForeignKey(Endpoint, verbose_name=_("端点"), on_delete=models.PROTECT, related_name="desktops")
    host = models.ForeignKey(
        Host, verbose_name=_("主机"), null=True, blank=True, on_delete=models.SET_NULL, related_name="desktops"
    )
    storage_pool = models.CharField(_("存储池"), max_length=100, blank=True)
    # Sizes at creation (copied from the flavor, or read from an imported VM): billing and quotas use these.
    vcpus = models.PositiveSmallIntegerField(_("vCPU"), default=1)
    memory_mib = models.PositiveIntegerField(_("内存 (MiB)"), default=1024)
    disk_gib = models.PositiveIntegerField(_("系统盘 (GiB)"), default=0)
    gpus = models.PositiveSmallIntegerField(_("GPU"), default=0)
    gpu_device = models.CharField(_("GPU 设备"), max_length=100, blank=True)

    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.REQUESTED, db_index=True)
    power_state = models.CharField(_("电源"), max_length=10, choices=Power.choices, default=Power.UNKNOWN)
    # The state an operation in progress returns to if it fails transiently.
    stable_state = models.CharField(max_length=16, choices=State.choices, blank=True, editable=False)
    error_reason = models.TextField(_("错误原因"), blank=True)
    last_error = models.TextField(_("最近错误"), blank=True)
    task_id = models.CharField(_("任务"), max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=0)
    vm_uuid = models.CharField(_("虚拟机 UUID"), max_length=64, blank=True)
    vnc_host = models.CharField(max_length=100, blank=True)
    vnc_port = models.PositiveIntegerField(_("VNC 端口"), null=True, blank=True)
    mac = models.CharField(_("MAC"), max_length=17, blank=True)
    guest_ip = models.CharField(_("IP"), max_length=45, blank=True)
    # Disks and NICs as the hypervisor last reported them (imported VMs, reconciliation).
    hardware = models.JSONField(default=dict, blank=True)
    imported = models.BooleanField(_("接管"), default=False)
    # A clone's system disk is a copy of this desktop's (made while the source was held stopped).
    cloned_from = models.ForeignKey(
        "self", verbose_name=_("克隆自"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What was reserved from the tenant's quota (kept to release exactly that).
    quota_reservation = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    deleted_at = models.DateTimeField(_("删除时间"), null=True, blank=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("云桌面")
        verbose_name_plural = _("云桌面")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "vm_name"], name="desktop_unique_vm_name")]
        indexes = [models.Index(fields=["tenant", "state"]), models.Index(fields=["owner", "state"])]

    def __str__(self):
        return self.name

    # --- the state machine ---------------------------------------------------------
    def _require(self, *states, action: str) -> None:
        if self.state not in states:
            raise InvalidTransition(
                _("桌面当前为“%(state)s”，不能%(action)s。") % {"state": self.get_state_display(), "action": action},
                code=ComputeError.DESKTOP_INVALID_TRANSITION,
                detail={"state": self.state, "action": action},
            )

    @property
    def is_live(self) -> bool:
        return self.state in self.LIVE

    def provision(self) -> None:
        self._require(self.State.REQUESTED, self.State.ERROR, action=_("创建"))
        self.state = self.State.PROVISIONING
        self.stable_state = self.State.REQUESTED
        self.error_reason = ""

    def provisioned(self, *, running: bool) -> None:
        self.state = self.State.RUNNING if running else self.State.STOPPED
        self.power_state = self.Power.RUNNING if running else self.Power.STOPPED
        self.stable_state = ""
        self.error_reason = ""
        self.last_error = ""
        self.attempts = 0

    def can_power(self, verb: str) -> bool:
        return self.state == self.POWER_VERBS[verb][0]

    def power(self, verb: str) -> None:
        """Start, stop or reboot: the desktop is in the verb's state until the hypervisor answers."""
        source, through, label = self.POWER_VERBS[verb]
        self._require(source, action=label)
        self.stable_state, self.state = self.state, through

    def start(self) -> None:
        self.power("start")

    def stop(self) -> None:
        self.power("stop")

    def reboot(self) -> None:
        self.power("reboot")

    def occupy(self, *, action: str) -> None:
        """A snapshot, revert, disk or reset operation holds the desktop until it finishes."""
        self._require(*self.LIVE, action=action)
        self.stable_state, self.state = self.state, self.State.BUSY

    def begin_resize(self) -> None:
        """A new flavor is applied to the stopped VM; the desktop is held until the hypervisor answers."""
        self._require(self.State.STOPPED, action=_("调整规格"))
        self.stable_state, self.state = self.state, self.State.BUSY

    def resized(self, *, flavor: Flavor, gpu_device: str) -> None:
        self.flavor = flavor
        self.vcpus = flavor.vcpus
        self.memory_mib = flavor.memory_mib
        self.gpus = flavor.gpus
        self.gpu_device = gpu_device

    def settle(self, *, power: str) -> None:
        """An operation finished: the state follows the real power state."""
        self.power_state = power
        self.state = self.State.RUNNING if power == self.Power.RUNNING else self.State.STOPPED
        self.stable_state = ""
        self.last_error = ""
        self.attempts = 0

    def abandon(self, *, reason: str) -> None:
        """An operation failed for good but the VM is intact: back to where it was, error noted."""
        self.state = self.stable_state if self.stable_state in self.LIVE else self.State.ERROR
        self.stable_state = ""
        self.last_error = reason
        if self.state == self.State.ERROR:
            self.error_reason = reason

    def begin_deletion(self) -> None:
        self._require(self.State.REQUESTED, *self.LIVE, self.State.ERROR, action=_("删除"))
        self.stable_state, self.state = self.state, self.State.DELETING

    def deleted(self) -> None:
        self.state = self.State.DELETED
        self.power_state = self.Power.STOPPED
        self.stable_state = ""
        self.vnc_port = None
        self.deleted_at = timezone.now()

    def fail(self, *, reason: str) -> None:
        self.state = self.State.ERROR
        self.stable_state = ""
        self.error_reason = reason
        self.last_error = reason

    def drift(self, *, power: str) -> bool:
        """Reconciliation saw another power state; returns whether anything changed."""
        if self.state not in self.LIVE or power == self.power_state:
            return False
        self.power_state = power
        self.state = self.State.RUNNING if power == self.Power.RUNNING else self.State.STOPPED
        if power != self.Power.RUNNING:
            self.vnc_port = None
        return True

    def vanish(self) -> None:
        self.fail(reason=str(_("虚拟机已在虚拟化平台上消失。")))
        self.power_state = self.Power.UNKNOWN
        self.vnc_port = None


class SnapshotManager(LockingManager):
    def gone_with_disk(self, *, desktop_id: int) -> int:
        """The desktop's VM or system disk is gone (deleted, reset): its snapshots went with it."""
        return (
            self.filter(desktop_id=desktop_id)
            .exclude(state=Snapshot.State.DELETED)
            .update(state=Snapshot.State.DELETED)
        )


class Snapshot(models.Model):
    class State(models.TextChoices):
        CREATING = "creating", _("创建中")
        READY = "ready", _("可用")
        REVERTING = "reverting", _("恢复中")
        DELETING = "deleting", _("删除中")
        DELETED = "deleted", _("已删除")
        ERROR = "error", _("错误")

    # The state a snapshot is in while the task of each operation runs.
    IN_PROGRESS = {"create": State.CREATING, "revert": State.REVERTING, "delete": State.DELETING}

    desktop = models.ForeignKey(Desktop, verbose_name=_("桌面"), on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(_("名称"), max_length=64)
    description = models.CharField(_("说明"), max_length=255, blank=True)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.CREATING)
    last_error = models.TextField(_("最近错误"), blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = SnapshotManager()

    class Meta:
        verbose_name = _("快照")
        verbose_name_plural = _("快照")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["desktop", "name"], name="snapshot_unique_name")]

    def __str__(self):
        return self.name

    def begin(self, op: str) -> None:
        """Revert to a ready snapshot, or delete it: it is in the operation's state until the task reports."""
        if self.state != self.State.READY:
            raise Conflict(_("快照当前不可用。"), code=ComputeError.SNAPSHOT_NOT_READY, detail={"state": self.state})
        self.state = self.IN_PROGRESS[op]

    def finished(self, *, op: str, error: str = "") -> None:
        """The task reported. A failed create leaves a snapshot that cannot be used; a failed revert or
        delete leaves it as it was, ready."""
        if error:
            self.last_error = error
            self.state = self.State.ERROR if op == "create" else self.State.READY
        elif op == "delete":
            self.state = self.State.DELETED
        else:
            self.state = self.State.READY
            self.last_error = ""


class Volume(models.Model):
    """A data disk of a tenant: attached to one desktop at a time, or kept detached to attach elsewhere.

    It holds disk quota from its creation until it is deleted; a desktop's deletion deletes
    the disks attached to it then.
    """

    class State(models.TextChoices):
        ATTACHING = "attaching", _("挂载中")
        ATTACHED = "attached", _("已挂载")
        DETACHING = "detaching", _("卸载中")
        DETACHED = "detached", _("未挂载")
        DELETING = "deleting", _("删除中")
        DELETED = "deleted", _("已删除")
        ERROR = "error", _("错误")

    desktop = models.ForeignKey(
        Desktop, verbose_name=_("桌面"), null=True, blank=True, on_delete=models.CASCADE, related_name="volumes"
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("租户"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("使用者"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Where it lives: a volume moves only between desktops of this endpoint.
    endpoint = models.ForeignKey(
        Endpoint, verbose_name=_("端点"), null=True, blank=True, on_delete=models.PROTECT, related_name="volumes"
    )
    name = models.CharField(_("名称"), max_length=64)
    size_gib = models.PositiveIntegerField(_("容量 (GiB)"), validators=[MinValueValidator(1)])
    pool = models.CharField(_("存储池"), max_length=100, blank=True)
    volume_name = models.CharField(_("卷名"), max_length=255, blank=True)
    target = models.CharField(_("设备"), max_length=32, blank=True)
    path = models.CharField(_("路径"), max_length=500, blank=True)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.ATTACHING)
    last_error = models.TextField(_("最近错误"), blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    quota_reservation = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("数据盘")
        verbose_name_plural = _("数据盘")
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.name

    # The state a volume is in while the task of each operation runs.
    IN_PROGRESS = {"attach": State.ATTACHING, "detach": State.DETACHING, "delete": State.DELETING}

    def begin_attach(self, desktop: Desktop) -> None:
        """A detached disk goes onto ``desktop``, which must be on the disk's endpoint (where its file is)."""
        if self.state != self.State.DETACHED or self.desktop_id is not None:
            raise Conflict(_("数据盘正在使用中。"), code=ComputeError.VOLUME_IN_USE, detail={"state": self.state})
        if self.endpoint_id != desktop.endpoint_id:
            raise InvalidInput(
                _("数据盘在另一个虚拟化端点上，只能挂载到同一端点的桌面。"), code=ComputeError.VOLUME_OTHER_ENDPOINT
            )
        self.desktop = desktop
        self.state = self.State.ATTACHING
        self.last_error = ""

    def begin_detach(self) -> None:
        if self.state not in (self.State.ATTACHED, self.State.ERROR):
            raise Conflict(
                _("数据盘当前不能卸载。"), code=ComputeError.VOLUME_NOT_ATTACHED, detail={"state": self.state}
            )
        self.state = self.State.DETACHING

    def begin_deletion(self) -> None:
        if self.state not in (self.State.DETACHED, self.State.ERROR) or self.desktop_id is not None:
            raise Conflict(
                _("数据盘仍挂载在桌面上，请先卸载。"), code=ComputeError.VOLUME_IN_USE, detail={"state": self.state}
            )
        self.state = self.State.DELETING

    def attached(self, *, target: str, path: str, volume_name: str = "") -> None:
        self.state, self.target, self.path = self.State.ATTACHED, target, path
        self.volume_name = volume_name or self.volume_name
        self.last_error = ""

    def detached(self) -> None:
        """Off its desktop and kept, to be attached elsewhere or deleted."""
        self.state, self.desktop, self.target = self.State.DETACHED, None, ""

    def deleted(self) -> None:
        self.state, self.desktop, self.target = self.State.DELETED, None, ""

    def gone_with_desktop(self) -> None:
        """Its desktop was deleted while the disk was on it: the disk was deleted with the VM."""
        self.state = self.State.DELETED

    def fail(self, *, op: str, reason: str) -> None:
        """The task failed for good; a disk that could not be deleted is still there (and detached)."""
        self.last_error = reason
        self.state = self.State.DETACHED if op == "delete" else self.State.ERROR

"""The inventory: sites, clusters, endpoints (hypervisors, their credentials encrypted at rest), their
concurrency leases, hosts, storage pools and GPU profiles."""

import base64
import hashlib
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager

# A host whose agent has not beaten for this long shows "agent down"; work for it waits in its queue.
HEARTBEAT_STALE_SECONDS = 90


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


class SharedStorage(models.Model):
    """The storage every host of a cluster sees at the same path: golden images and desktop disks of the
    cluster live there, so its desktops migrate live without copying disks (and restart elsewhere, HA).

    ``netfs``: an NFS export that libvirt mounts on each host; ``dir``: a directory each host already
    mounts at ``path`` (CephFS, GlusterFS, GFS2/OCFS2 on an iSCSI LUN, the testbed's bound directory).
    libvirt counts only network and cluster file systems as shared: ``unsafe_migration`` is for a
    directory it cannot recognise (the testbed's), whose migrations then pass ``VIR_MIGRATE_UNSAFE``.
    """

    class Kind(models.TextChoices):
        NETFS = "netfs", _("NFS（libvirt 挂载）")
        DIR = "dir", _("已挂载的共享目录")

    cluster = models.OneToOneField(
        Cluster, verbose_name=_("集群"), on_delete=models.CASCADE, related_name="shared_storage"
    )
    pool = models.CharField(_("存储池名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=8, choices=Kind.choices, default=Kind.NETFS)
    path = models.CharField(_("挂载路径"), max_length=255)
    source_host = models.CharField(_("NFS 服务器"), max_length=255, blank=True)
    source_path = models.CharField(_("NFS 导出路径"), max_length=255, blank=True)
    unsafe_migration = models.BooleanField(_("不安全迁移"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("共享存储")
        verbose_name_plural = _("共享存储")

    def __str__(self):
        return f"{self.cluster}/{self.pool}"

    @classmethod
    def of(cls, cluster_id: int | None) -> "SharedStorage | None":
        """The cluster's shared storage, or None when its hosts have local storage only."""
        return cls.objects.filter(cluster_id=cluster_id).first() if cluster_id else None


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


class HaState(models.TextChoices):
    """A host's HA state (compute/ha/states.py moves it): ok → suspect → fencing → fenced, or fence_failed."""

    OK = "ok", _("正常")
    SUSPECT = "suspect", _("疑似故障")
    FENCING = "fencing", _("隔离中")
    FENCED = "fenced", _("已隔离")
    FENCE_FAILED = "fence_failed", _("隔离失败")


class Host(models.Model):
    """A hypervisor host (libvirt: the endpoint itself; vCenter: the endpoint's summed hosts).

    A compute node added with ``host_add`` is a libvirt endpoint of its own (its URI) with one host
    row carrying its management address, the capacity read from it, its state and its agent's heartbeat.
    """

    class State(models.TextChoices):
        ENABLED = "enabled", _("启用")
        MAINTENANCE = "maintenance", _("维护")
        DOWN = "down", _("停机")

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
    # The management address: libvirtd, VNC and migrations listen there; one host per address.
    address = models.GenericIPAddressField(_("管理地址"), null=True, blank=True, unique=True)
    # The data (tunnel) address: the VXLAN devices of networks spanning hosts use it; one host per address.
    data_address = models.GenericIPAddressField(_("数据地址"), protocol="IPv4", null=True, blank=True, unique=True)
    state = models.CharField(_("状态"), max_length=12, choices=State.choices, default=State.ENABLED)
    heartbeat_at = models.DateTimeField(_("代理心跳"), null=True, blank=True)
    numa_cells = models.PositiveSmallIntegerField(_("NUMA 节点"), default=1)
    mdev_types = models.JSONField(_("中介设备类型"), default=list, blank=True)
    storage = models.JSONField(_("存储池容量"), default=list, blank=True)
    last_error = models.TextField(_("最近错误"), blank=True)
    # The network node of its cluster (else of its site): holds the router networks' gateways, SNAT,
    # elastic IPs and port forwards, in namespaces its agent makes (compute/networking/gateway.py).
    is_network_node = models.BooleanField(_("网络节点"), default=False)
    # Migrations leaving this host copy at most this much (MiB/s; 0: as fast as the network goes).
    migration_bandwidth_mib = models.PositiveIntegerField(_("迁移带宽上限 (MiB/s)"), default=0)
    maintenance_since = models.DateTimeField(_("维护开始"), null=True, blank=True)
    # HA (compute/ha/): the portal's last successful libvirt probe, the host's HA state and its BMC.
    probed_at = models.DateTimeField(_("最近探测成功"), null=True, blank=True)
    ha_state = models.CharField(_("高可用状态"), max_length=12, choices=HaState.choices, default=HaState.OK)
    ha_since = models.DateTimeField(_("高可用状态时间"), null=True, blank=True)
    ha_reason = models.TextField(_("高可用说明"), blank=True)
    bmc_address = models.CharField(_("BMC 地址"), max_length=255, blank=True)
    bmc_port = models.PositiveIntegerField(_("BMC 端口"), default=623)
    bmc_username = models.CharField(_("BMC 用户名"), max_length=64, blank=True)
    bmc_password_encrypted = models.TextField(blank=True, editable=False)

    objects = LockingManager()

    class Meta:
        verbose_name = _("主机")
        verbose_name_plural = _("主机")
        constraints = [models.UniqueConstraint(fields=["endpoint", "name"], name="host_unique_name")]

    def __str__(self):
        return self.name

    @property
    def uri(self) -> str:
        return self.endpoint.url

    @property
    def agent_alive(self) -> bool:
        """Whether the host's agent beat recently (never: no agent runs there)."""
        since = timezone.now() - timedelta(seconds=HEARTBEAT_STALE_SECONDS)
        return self.heartbeat_at is not None and self.heartbeat_at >= since

    @property
    def queue(self) -> str:
        """The Celery queue of this host's agent (``host_agent``)."""
        return f"host.{self.endpoint.name}"

    @property
    def bmc_password(self) -> str:
        return secret_decrypt(self.bmc_password_encrypted)

    def set_bmc_password(self, value: str) -> None:
        self.bmc_password_encrypted = secret_encrypt(value)

    @property
    def bmc_configured(self) -> bool:
        return bool(self.bmc_address and self.bmc_username)


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

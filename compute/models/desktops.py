"""A desktop VM and its state machine: the verbs services call under its lock."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager
from common.errors import InvalidTransition
from compute.errors import ComputeError
from compute.models.images import Flavor, ImageVersion
from compute.models.inventory import Endpoint, Host


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
        MIGRATING = "migrating", _("迁移中")
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

    TRANSIENT = (
        State.PROVISIONING,
        State.STARTING,
        State.STOPPING,
        State.REBOOTING,
        State.BUSY,
        State.MIGRATING,
        State.DELETING,
    )
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
    # Restarted elsewhere when its host fails (compute/ha/); empty: the cluster's default (on with shared storage).
    ha_enabled = models.BooleanField(_("高可用"), null=True, blank=True)
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
        indexes = [
            models.Index(fields=["tenant", "state"]),
            models.Index(fields=["owner", "state"]),
            # The lists' order: a page's keys are read from this index, not sorted (common/paging.py).
            models.Index(fields=["created_at", "id"], name="desktop_list_order"),
        ]

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

    def begin_migration(self) -> None:
        """Running (live) or stopped (cold): the desktop moves to another host and is held until it is there."""
        self._require(*self.LIVE, action=_("迁移"))
        self.stable_state, self.state = self.state, self.State.MIGRATING

    def migrated(self, *, endpoint: Endpoint, host: Host) -> None:
        """The VM runs (or is defined) on ``host`` now; the state is what it was before the move."""
        self.endpoint, self.host = endpoint, host
        self.state = self.stable_state if self.stable_state in self.LIVE else self.State.RUNNING
        self.stable_state = ""
        self.last_error = ""

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

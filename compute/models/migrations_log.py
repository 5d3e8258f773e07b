"""A desktop's move from one host to another (live or cold), with the progress its page reads."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from compute.models.desktops import Desktop
from compute.models.inventory import Host


class DesktopMigration(models.Model):
    """One migration: queued by ``desktop_migrate``, run by ``compute.tasks.migration``, which writes the
    data remaining while it copies and the downtime when done. A refused move of a maintenance
    evacuation is a row too (``failed`` from the start), so the host's page lists what could not move."""

    class Kind(models.TextChoices):
        LIVE = "live", _("在线迁移")
        COLD = "cold", _("离线迁移")

    class State(models.TextChoices):
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("迁移中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")
        CANCELLED = "cancelled", _("已取消")

    class Reason(models.TextChoices):
        ADMIN = "admin", _("管理员")
        MAINTENANCE = "maintenance", _("维护撤离")
        DRS = "drs", _("负载均衡")

    FINISHED = (State.DONE, State.FAILED, State.CANCELLED)

    desktop = models.ForeignKey(Desktop, verbose_name=_("桌面"), on_delete=models.CASCADE, related_name="migrations")
    source = models.ForeignKey(
        Host, verbose_name=_("源主机"), null=True, on_delete=models.SET_NULL, related_name="migrations_out"
    )
    target = models.ForeignKey(
        Host, verbose_name=_("目标主机"), null=True, blank=True, on_delete=models.SET_NULL, related_name="migrations_in"
    )
    # Names kept for the history once a host is removed.
    source_name = models.CharField(_("源主机"), max_length=255)
    target_name = models.CharField(_("目标主机"), max_length=255, blank=True)
    kind = models.CharField(_("方式"), max_length=8, choices=Kind.choices, default=Kind.LIVE)
    copy_storage = models.BooleanField(_("复制磁盘"), default=False)
    reason = models.CharField(_("原因"), max_length=12, choices=Reason.choices, default=Reason.ADMIN)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data_total = models.PositiveBigIntegerField(_("数据总量"), default=0)
    data_remaining = models.PositiveBigIntegerField(_("剩余数据"), default=0)
    downtime_ms = models.PositiveIntegerField(_("停机时间 (ms)"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("耗时 (ms)"), null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(_("错误"), blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    started_at = models.DateTimeField(_("开始时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("结束时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("桌面迁移")
        verbose_name_plural = _("桌面迁移")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.desktop_id}: {self.source_name} → {self.target_name}"

    @property
    def finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def percent(self) -> int:
        """How much of the data is across (0-100); a finished one is 100."""
        if self.state == self.State.DONE:
            return 100
        if not self.data_total:
            return 0
        return max(0, min(99, round(100 * (self.data_total - self.data_remaining) / self.data_total)))


class DrsPolicy(models.Model):
    """Load balancing (DRS) of a cluster: off by default; ``recommend`` shows what it would move,
    ``automatic`` moves it (at most ``max_moves`` migrations of its own at a time)."""

    class Mode(models.TextChoices):
        OFF = "off", _("关闭")
        RECOMMEND = "recommend", _("仅建议")
        AUTOMATIC = "automatic", _("自动")

    cluster = models.OneToOneField(
        "compute.Cluster", verbose_name=_("集群"), on_delete=models.CASCADE, related_name="drs"
    )
    mode = models.CharField(_("模式"), max_length=10, choices=Mode.choices, default=Mode.OFF)
    # A host above this share of its memory capacity (after overcommit) is hot; a target stays below it.
    threshold_percent = models.PositiveSmallIntegerField(_("负载阈值 (%)"), default=80)
    max_moves = models.PositiveSmallIntegerField(_("同时迁移数上限"), default=2)
    # Never while a class of the cluster is in its first minutes (its desktops are starting at once).
    class_grace_minutes = models.PositiveSmallIntegerField(_("上课后暂停（分钟）"), default=15)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("负载均衡策略")
        verbose_name_plural = _("负载均衡策略")

    def __str__(self):
        return f"{self.cluster}: {self.mode}"

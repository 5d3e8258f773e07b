"""HA data: each cluster's HA settings and the record of each host failure handled (an incident)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager
from compute.models.inventory import Cluster, Host


class ClusterHa(models.Model):
    """A cluster's HA settings; a cluster without a row uses the defaults (on, settings.HA_DETECTION_SECONDS, IPMI)."""

    class Fencing(models.TextChoices):
        IPMI = "ipmi", _("IPMI 断电（BMC）")

    cluster = models.OneToOneField(Cluster, verbose_name=_("集群"), on_delete=models.CASCADE, related_name="ha")
    enabled = models.BooleanField(_("启用高可用"), default=True)
    # Empty: settings.HA_DETECTION_SECONDS (15 s).
    detection_seconds = models.PositiveSmallIntegerField(
        _("故障检测时间（秒）"), null=True, blank=True, validators=[MinValueValidator(5), MaxValueValidator(600)]
    )
    fencing = models.CharField(_("隔离方式"), max_length=12, choices=Fencing.choices, default=Fencing.IPMI)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("集群高可用设置")
        verbose_name_plural = _("集群高可用设置")

    def __str__(self):
        return f"HA {self.cluster}"

    @property
    def detection(self) -> int:
        return self.detection_seconds or settings.HA_DETECTION_SECONDS


class HaIncident(models.Model):
    """One host failure as HA handled it: when it was seen missing, fenced, its desktops restarted or not."""

    class Outcome(models.TextChoices):
        OPEN = "open", _("处理中")
        RESTARTED = "restarted", _("已全部重启")
        PARTIAL = "partial", _("部分桌面未重启")
        FENCE_FAILED = "fence_failed", _("隔离失败，未重启")
        RECOVERED = "recovered", _("隔离前恢复")
        CLEARED = "cleared", _("管理员已解除")

    host = models.ForeignKey(Host, verbose_name=_("主机"), on_delete=models.CASCADE, related_name="ha_incidents")
    cluster = models.ForeignKey(Cluster, verbose_name=_("集群"), on_delete=models.CASCADE, related_name="+")
    last_seen_at = models.DateTimeField(_("最后在线"), null=True, blank=True)
    suspect_at = models.DateTimeField(_("判定故障"))
    fenced_at = models.DateTimeField(_("隔离完成"), null=True, blank=True)
    finished_at = models.DateTimeField(_("处理完成"), null=True, blank=True)
    outcome = models.CharField(_("结果"), max_length=12, choices=Outcome.choices, default=Outcome.OPEN)
    # [{"desktop", "name", "to"}] and [{"desktop", "name", "reason"}]
    restarted = models.JSONField(_("已重启桌面"), default=list, blank=True)
    unplaced = models.JSONField(_("未能重启的桌面"), default=list, blank=True)
    fence_error = models.TextField(_("隔离错误"), blank=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("高可用事件")
        verbose_name_plural = _("高可用事件")
        ordering = ["-suspect_at", "-id"]

    def __str__(self):
        return f"{self.host} {self.suspect_at:%Y-%m-%d %H:%M:%S}"

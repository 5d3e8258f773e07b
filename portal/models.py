"""Project-wide operational state: worker heartbeats, the hypervisor probes /healthz reports."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker said it was alive, and which queues it consumes."""

    hostname = models.CharField(_("主机名"), max_length=255, unique=True)
    queues = models.JSONField(_("队列"), default=list)
    last_seen = models.DateTimeField(_("最近心跳"), db_index=True)

    class Meta:
        verbose_name = _("工作进程心跳")
        verbose_name_plural = _("工作进程心跳")

    def __str__(self):
        return self.hostname


class HypervisorProbe(models.Model):
    """The last reachability check of one hypervisor endpoint, made by a worker.

    /healthz reads these rows and never connects to a hypervisor itself, so however often it
    is asked, each endpoint sees at most one check per portal.services.PROBE_INTERVAL.
    """

    endpoint = models.CharField(_("端点"), max_length=100, unique=True)
    status = models.CharField(_("状态"), max_length=500, default="pending")  # "ok" or why not
    checked_at = models.DateTimeField(_("检查时间"))

    class Meta:
        verbose_name = _("虚拟化端点探测")
        verbose_name_plural = _("虚拟化端点探测")

    def __str__(self):
        return f"{self.endpoint}: {self.status}"

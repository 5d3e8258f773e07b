"""Project-wide operational state: worker heartbeats."""

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

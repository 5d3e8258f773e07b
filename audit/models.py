"""The audit log: append-only events with the actor, object and result as they were."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from audit.actions import Action


class AuditEvent(models.Model):
    class Result(models.TextChoices):
        SUCCESS = "success", _("成功")
        FAILURE = "failure", _("失败")

    occurred_at = models.DateTimeField(_("时间"), db_index=True)
    actor_id = models.BigIntegerField(_("操作者ID"), null=True, blank=True)
    actor_username = models.CharField(_("操作者"), max_length=150, blank=True, db_index=True)
    actor_role = models.CharField(_("角色"), max_length=50, blank=True)
    tenant_slug = models.CharField(_("租户"), max_length=50, blank=True, db_index=True)
    source_ip = models.CharField(_("来源IP"), max_length=45, blank=True)
    user_agent = models.CharField(_("客户端"), max_length=255, blank=True)
    request_id = models.CharField(_("请求ID"), max_length=64, blank=True)
    action = models.CharField(_("操作"), max_length=64, choices=Action.choices, db_index=True)
    object_type = models.CharField(_("对象类型"), max_length=64, blank=True)
    object_id = models.CharField(_("对象ID"), max_length=64, blank=True)
    object_name = models.CharField(_("对象名称"), max_length=255, blank=True)
    result = models.CharField(_("结果"), max_length=10, choices=Result.choices, default=Result.SUCCESS)
    reason = models.CharField(_("原因"), max_length=500, blank=True)
    detail = models.JSONField(_("详情"), default=dict, blank=True)

    class Meta:
        verbose_name = _("审计事件")
        verbose_name_plural = _("审计事件")
        ordering = ["-id"]

    def __str__(self):
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action}"

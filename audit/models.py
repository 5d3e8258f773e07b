"""The audit log and login-security state: append-only events, the chain head, policy, reports."""

import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from audit.actions import Action

GENESIS_HASH = "0" * 64


class CanonicalJSONEncoder(DjangoJSONEncoder):
    """JSON with sorted keys and no spaces: the stored text of `detail` is what the chain hashes."""

    def __init__(self, *args, **kwargs):
        kwargs.update(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        super().__init__(*args, **kwargs)


def canonical_json(value) -> str:
    return json.dumps(value or {}, cls=CanonicalJSONEncoder)


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # the database triggers refuse it too; say why before the round trip
        raise AppendOnlyError(_("审计事件只能追加，不能修改。"))

    def delete(self):
        raise AppendOnlyError(_("审计事件只能追加，不能删除。"))


class AppendOnlyError(Exception):
    """An attempt to change or remove an audit event."""


class AuditEvent(models.Model):
    """One audited action. The id is the position in the hash chain, assigned under the chain lock."""

    class Result(models.TextChoices):
        SUCCESS = "success", _("成功")
        FAILURE = "failure", _("失败")

    id = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField(_("时间"), db_index=True)
    actor_id = models.BigIntegerField(_("操作者ID"), null=True, blank=True)
    actor_username = models.CharField(_("操作者"), max_length=150, blank=True, db_index=True)
    actor_role = models.CharField(_("角色"), max_length=50, blank=True)
    tenant_slug = models.CharField(_("租户"), max_length=50, blank=True, db_index=True)
    source_ip = models.CharField(_("来源IP"), max_length=45, blank=True)
    user_agent = models.CharField(_("客户端"), max_length=255, blank=True)
    request_id = models.CharField(_("请求ID"), max_length=64, blank=True)
    # No `choices`: every app adds actions to audit.actions.Action, and that must not need
    # an audit migration each time. The label comes from Action at display time.
    action = models.CharField(_("操作"), max_length=64, db_index=True)
    object_type = models.CharField(_("对象类型"), max_length=64, blank=True)
    object_id = models.CharField(_("对象ID"), max_length=64, blank=True)
    object_name = models.CharField(_("对象名称"), max_length=255, blank=True)
    result = models.CharField(_("结果"), max_length=10, choices=Result.choices, default=Result.SUCCESS)
    reason = models.CharField(_("原因"), max_length=500, blank=True)
    detail = models.JSONField(_("详情"), default=dict, blank=True, encoder=CanonicalJSONEncoder)
    prev_hash = models.CharField(_("前一事件摘要"), max_length=64, default=GENESIS_HASH)
    hash = models.CharField(_("摘要"), max_length=64, default="")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("审计事件")
        verbose_name_plural = _("审计事件")
        ordering = ["-id"]
        indexes = [models.Index(fields=["tenant_slug", "occurred_at"], name="audit_tenant_time")]

    def __str__(self):
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(_("审计事件只能追加，不能修改。"))
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(_("审计事件只能追加，不能删除。"))

    @property
    def role_label(self) -> str:
        from audit.hooks import role_label

        return role_label(self.actor_role)

    @property
    def object_type_label(self) -> str:
        """The object's kind in the reader's language ("app.model" -> the model's verbose name)."""
        from django.apps import apps

        try:
            return str(apps.get_model(self.object_type)._meta.verbose_name)
        except (LookupError, ValueError):
            return self.object_type

    @property
    def action_label(self) -> str:
        try:
            return str(Action(self.action).label)
        except ValueError:
            return self.action


class AuditChainHead(models.Model):
    """The single row every append locks: the last event's id and hash (see audit.chain)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    # HMAC of (last_id, last_hash) with the chain key: a head set back by hand does not verify,
    # and a trigger refuses moving it back at all (audit.triggers).
    signature = models.CharField(max_length=64, default="")

    class Meta:
        verbose_name = _("审计链头")
        verbose_name_plural = _("审计链头")

    def __str__(self):
        return f"#{self.last_id} {self.last_hash[:12]}"


class ChainVerification(models.Model):
    """The result of one run of the chain verifier (task, command or page)."""

    checked_at = models.DateTimeField(_("校验时间"), auto_now_add=True, db_index=True)
    ok = models.BooleanField(_("完整"))
    checked = models.BigIntegerField(_("已校验事件数"))
    first_bad = models.BigIntegerField(_("首个异常事件"), null=True, blank=True)
    reason = models.CharField(_("说明"), max_length=255, blank=True)
    duration_ms = models.PositiveIntegerField(_("耗时（毫秒）"), default=0)
    source = models.CharField(_("来源"), max_length=20, default="command")

    class Meta:
        verbose_name = _("审计链校验")
        verbose_name_plural = _("审计链校验")
        ordering = ["-checked_at", "-id"]

    SOURCES = {"page": _("页面上手动校验"), "task": _("定期任务"), "command": _("命令行")}

    def __str__(self):
        return f"{self.checked_at:%Y-%m-%d %H:%M} ok={self.ok} checked={self.checked}"

    @property
    def source_label(self) -> str:
        return str(self.SOURCES.get(self.source, self.source))


class AuditArchive(models.Model):
    """A signed, compressed file holding events older than the retention period."""

    created_at = models.DateTimeField(_("归档时间"), auto_now_add=True)
    file_name = models.CharField(_("文件"), max_length=255)
    first_id = models.BigIntegerField(_("起始事件"))
    last_id = models.BigIntegerField(_("结束事件"))
    count = models.PositiveIntegerField(_("事件数"))
    last_hash = models.CharField(_("末事件摘要"), max_length=64)
    sha256 = models.CharField(_("文件SHA-256"), max_length=64)
    signature = models.CharField(_("HMAC签名"), max_length=64)
    before = models.DateTimeField(_("截止时间"))

    class Meta:
        verbose_name = _("审计归档")
        verbose_name_plural = _("审计归档")
        ordering = ["-created_at"]

    def __str__(self):
        return self.file_name


class SecurityPolicy(models.Model):
    """Login-security thresholds the security admin edits, always within the platform floor."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    password_min_length = models.PositiveSmallIntegerField(_("密码最小长度"), default=8)
    password_min_classes = models.PositiveSmallIntegerField(_("字符类别数（共4类）"), default=3)
    password_history = models.PositiveSmallIntegerField(_("不得与最近几次密码相同"), default=5)
    password_max_age_days = models.PositiveSmallIntegerField(_("密码有效期（天）"), default=90)
    lockout_failures = models.PositiveSmallIntegerField(_("登录失败锁定次数"), default=5)
    lockout_minutes = models.PositiveSmallIntegerField(_("锁定时长（分钟）"), default=30)
    idle_timeout_minutes = models.PositiveSmallIntegerField(_("空闲超时（分钟）"), default=15)
    reauth_minutes = models.PositiveSmallIntegerField(_("重新验证有效期（分钟）"), default=5)
    audit_retention_days = models.PositiveIntegerField(_("审计日志保留（天）"), default=180)
    updated_at = models.DateTimeField(_("修改时间"), auto_now=True)
    updated_by = models.CharField(_("修改人"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("安全策略")
        verbose_name_plural = _("安全策略")

    def __str__(self):
        return str(_("安全策略"))


class PasswordHistory(models.Model):
    """Hashes of a user's previous passwords (for the "not one of the last N" rule) and when they changed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    password = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("历史密码")
        verbose_name_plural = _("历史密码")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.user_id} {self.created_at:%Y-%m-%d}"


class ComplianceReport(models.Model):
    """A 等保 self-assessment: the results of every check at one moment, kept as they were."""

    class Level(models.IntegerChoices):
        TWO = 2, _("第二级")
        THREE = 3, _("第三级")

    level = models.PositiveSmallIntegerField(_("等级"), choices=Level.choices)
    created_at = models.DateTimeField(_("生成时间"), auto_now_add=True, db_index=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    created_by_username = models.CharField(_("生成人"), max_length=150, blank=True)
    results = models.JSONField(_("检查结果"), default=list)
    rate = models.DecimalField(_("符合率"), max_digits=5, decimal_places=2)
    counts = models.JSONField(_("统计"), default=dict)

    class Meta:
        verbose_name = _("等保自查报告")
        verbose_name_plural = _("等保自查报告")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_level_display()} {self.created_at:%Y-%m-%d %H:%M}"


class ManualAssessment(models.Model):
    """The security admin's finding for a check that cannot be made automatically."""

    check_id = models.CharField(_("检查项"), max_length=64, unique=True)
    status = models.CharField(_("符合情况"), max_length=20)
    evidence = models.TextField(_("证据"))
    updated_at = models.DateTimeField(_("录入时间"), auto_now=True)
    updated_by = models.CharField(_("录入人"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("人工核查结果")
        verbose_name_plural = _("人工核查结果")

    def __str__(self):
        return f"{self.check_id}: {self.status}"

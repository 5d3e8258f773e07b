"""Every auditable action, as one enum. Services name their events from here."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    LOGIN_SUCCEEDED = "auth.login", _("登录成功")
    LOGIN_FAILED = "auth.login_failed", _("登录失败")
    LOGOUT = "auth.logout", _("退出登录")
    TENANT_CREATED = "tenant.created", _("创建租户")
    ROLE_GRANTED = "role.granted", _("授予角色")
    ROLE_REVOKED = "role.revoked", _("撤销角色")
    # Tenants, quotas and approvals.
    QUOTA_CHANGED = "quota.changed", _("修改配额")
    REQUEST_SUBMITTED = "request.submitted", _("提交申请")
    REQUEST_APPROVED = "request.approved", _("批准申请")
    REQUEST_REJECTED = "request.rejected", _("驳回申请")
    REQUEST_CANCELLED = "request.cancelled", _("撤回申请")
    REQUEST_FULFILLED = "request.fulfilled", _("申请已交付")
    REQUEST_FAILED = "request.failed", _("申请交付失败")
    QUOTA_RESERVED = "quota.reserved", _("预留配额")
    QUOTA_COMMITTED = "quota.committed", _("确认使用配额")
    QUOTA_RELEASED = "quota.released", _("释放配额")
    TENANT_CHANGED = "tenant.changed", _("修改租户")
    COURSE_CREATED = "course.created", _("创建课程")
    COURSE_CHANGED = "course.changed", _("修改课程")
    COURSE_DELETED = "course.deleted", _("删除课程")
    ROSTER_IMPORTED = "course.roster_imported", _("导入课程名单")
    ROSTER_CHANGED = "course.roster_changed", _("修改课程名单")
    APPROVAL_POLICY_CHANGED = "approval_policy.changed", _("修改审批策略")

"""The roles of the portal: five tenant roles and three platform roles (三员分立)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class TenantRole(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", _("院系管理员")
    TEACHER = "teacher", _("教师")
    STUDENT = "student", _("学生")
    FINANCE = "finance", _("财务")
    AUDITOR = "auditor", _("审计员")


class PlatformRole(models.TextChoices):
    """The three platform administrators. No account holds two of them."""

    SYSTEM_ADMIN = "system_admin", _("系统管理员")
    SECURITY_ADMIN = "security_admin", _("安全管理员")
    AUDIT_ADMIN = "audit_admin", _("审计管理员")


ALL_ROLES = {**dict(TenantRole.choices), **dict(PlatformRole.choices)}

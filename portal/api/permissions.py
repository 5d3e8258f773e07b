"""Project-wide API permissions."""

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import SAFE_METHODS, BasePermission

from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import roles_of

READ_ONLY_ROLES = {TenantRole.AUDITOR, PlatformRole.AUDIT_ADMIN}


class AuditorsReadOnly(BasePermission):
    """Auditors and the audit admin read; they never write, anywhere (等保: 审计管理员只读)."""

    message = _("审计角色只读，不能执行写操作。")

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS or not request.user.is_authenticated:
            return True
        roles = roles_of(request.user)
        return not roles or not roles <= READ_ONLY_ROLES

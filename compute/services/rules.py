"""Checks every service module shares: who may act on a desktop or on the inventory, and how a
hypervisor's refusal reads to a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from common.errors import Forbidden
from compute import selectors
from compute.drivers.base import DriverError, ErrorCode
from compute.errors import ComputeError
from compute.models import Desktop

if TYPE_CHECKING:
    from tenants.models import User


def require_manage(actor: User, desktop: Desktop) -> None:
    if not selectors.desktop_manageable_by(actor, desktop):
        raise Forbidden(_("您只能查看此桌面，不能操作它。"), code=ComputeError.DESKTOP_READ_ONLY)


def require_system_admin(actor: User) -> None:
    if not selectors.is_system_admin(actor):
        raise Forbidden(_("只有系统管理员可以管理虚拟化资源。"), code=ComputeError.SYSTEM_ADMIN_ONLY)


def driver_error_message(exc: DriverError) -> str:
    if exc.code == ErrorCode.AUTH:
        return _("虚拟化平台拒绝了用户名或密码。")
    if exc.code == ErrorCode.CERTIFICATE:
        return _(
            "TLS 证书校验失败：主机的证书不受本机 CA 信任、与主机名不符或已过期，或本机的 CA 证书、客户端证书缺失。"
        )
    if exc.code in (ErrorCode.UNREACHABLE, ErrorCode.TIMEOUT):
        return _("无法连接到虚拟化平台，请检查地址和网络。")
    return _("虚拟化平台返回错误。")

"""Who may manage a pool, and who compute's desktop services act for when the platform does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from common.errors import Forbidden
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool
from tenants import permissions as tenant_permissions
from tenants.models import Course

if TYPE_CHECKING:
    from tenants.models import User


def can_manage_pool(user: User | None, pool: DesktopPool) -> bool:
    return user is not None and tenant_permissions.can_manage_course(user, pool.course)


def require_manage(actor: User | None, pool: DesktopPool) -> None:
    if actor is not None and not can_manage_pool(actor, pool):
        raise Forbidden(_("只有课程教师或院系管理员可以管理该桌面池。"), code=ErrorCode.POOL_FORBIDDEN)


def stand_in(actor: User | None, course: Course) -> User:
    """Who compute's desktop services act for: the person, or the course's teacher for the platform."""
    return actor if actor is not None else course.teacher

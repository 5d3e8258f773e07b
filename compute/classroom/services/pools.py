"""Course desktop pools: one made for a course's roster (directly or from an approved request), the
wizard's request for one, the course page's link to it, and its settings.

Desktops are made by compute's own services (``services.seats``). ``actor=None`` means the platform
itself (an approved request being fulfilled)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput
from compute.classroom import locks
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.classroom.services.access import require_manage, stand_in
from compute.classroom.services.schedule import schedule_minutes
from compute.classroom.services.seats import roster_students, seat_amounts, seats_provision
from compute.models import Endpoint, Flavor, ImageVersion
from tenants import permissions as tenant_permissions
from tenants.models import ApprovalRequest, Course, RosterEntry
from tenants.quotas import QuotaExceeded, quota_check
from tenants.services import request_hand_over

if TYPE_CHECKING:
    from tenants.models import User

log = logging.getLogger(__name__)


def _pool_policy(
    persistence: str, lead_minutes: int, shutdown_after_minutes: int, shutdown_deadline_minutes: int | None
) -> dict:
    """The persistence and schedule offsets a new pool asks for, checked (InvalidInput), as its fields."""
    if persistence not in DesktopPool.Persistence.values:
        raise InvalidInput(_("未知的保留策略。"), code=ErrorCode.POOL_PERSISTENCE_INVALID)
    minutes = schedule_minutes(
        lead_minutes=lead_minutes,
        shutdown_after_minutes=shutdown_after_minutes,
        shutdown_deadline_minutes=shutdown_deadline_minutes,
    )
    return {"persistence": persistence, **minutes}


def _refuse_a_second_pool(course: Course) -> None:
    if DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).exists():
        raise Conflict(_("该课程已有桌面池。"), code=ErrorCode.POOL_EXISTS)


def pool_create(
    *,
    actor: User | None,
    course: Course,
    image_version: ImageVersion,
    flavor: Flavor,
    persistence: str = DesktopPool.Persistence.PERSISTENT,
    lead_minutes: int = 15,
    shutdown_after_minutes: int = 10,
    shutdown_deadline_minutes: int | None = None,
    endpoint: Endpoint | None = None,
    request: ApprovalRequest | None = None,
    seats: int = 0,
) -> DesktopPool:
    """One desktop per student on the roster, and spare seats up to ``seats`` when it asks for more.
    A pool larger than the quotas is refused, with the shortfall, before anything is created."""
    if actor is not None and not tenant_permissions.can_manage_course(actor, course):
        raise Forbidden(_("只有课程教师或院系管理员可以为课程创建桌面池。"), code=ErrorCode.POOL_FORBIDDEN)
    policy = _pool_policy(persistence, lead_minutes, shutdown_after_minutes, shutdown_deadline_minutes)
    if image_version.status != ImageVersion.Status.READY:
        raise InvalidInput(_("镜像版本尚不可用。"), code=ErrorCode.IMAGE_NOT_READY)
    creator = stand_in(actor, course)
    with transaction.atomic():
        course = locks.course_lock(course.pk)
        _refuse_a_second_pool(course)
        if request is not None:
            # The request's reservation held the seats until now; each desktop reserves its own
            # share as it is created, so the request's hold is turned over to them here. The
            # request is delivered once the desktops run (services.fulfilment).
            request = request_hand_over(request=request, detail={"course": course.code})
        students = roster_students(course)
        if not students:
            raise InvalidInput(_("课程名单为空，请先导入学生名单。"), code=ErrorCode.ROSTER_EMPTY)
        total = max(int(seats or 0), len(students))
        shortfalls = quota_check(tenant=course.tenant, course=course, amounts=seat_amounts(flavor, total))
        if shortfalls:
            raise QuotaExceeded(shortfalls)
        pool = DesktopPool.objects.create(
            course=course,
            tenant=course.tenant,
            name=f"{course.code} {course.name}"[:100],
            image_version=image_version,
            flavor=flavor,
            endpoint=endpoint,
            **policy,
            request=request,
            created_by=actor,
            seat_target=total if total > len(students) else 0,
        )
        spares = [None] * (total - len(students))
        Seat.objects.bulk_create([Seat(pool=pool, student=student) for student in [*students, *spares]])
        event_record(
            action=Action.POOL_CREATED,
            actor=actor,
            target=pool,
            tenant=pool.tenant,
            detail={
                "course": course.code,
                "seats": total,
                "spare_seats": len(spares),
                "image": str(image_version),
                "flavor": flavor.name,
                "persistence": persistence,
                "request": request.pk if request else None,
            },
        )
    # The pool and its seats are committed (or refused) as one; each desktop is then requested in
    # its own transaction, so provisioning starts with the first seat.
    seats_provision(pool_id=pool.pk, creator=creator)
    if request is not None:
        from compute.classroom.services.fulfilment import pool_request_progress

        pool_request_progress(pool.pk)  # seats refused at once (no capacity) show on the request now
    return pool


def _payload_objects(request: ApprovalRequest) -> tuple[dict, ImageVersion, Flavor]:
    payload = request.payload or {}
    version = ImageVersion.objects.filter(pk=payload.get("image_version")).first()
    flavor = Flavor.objects.filter(pk=payload.get("flavor")).first()
    if version is None or flavor is None:
        raise InvalidInput(_("申请中的镜像或规格已不存在。"), code=ErrorCode.REQUEST_PAYLOAD_INVALID)
    return payload, version, flavor


def pool_create_from_request(*, request: ApprovalRequest) -> DesktopPool:
    """Fulfil an approved course-desktop request: its payload names image version, flavor and policy."""
    payload, version, flavor = _payload_objects(request)
    return pool_create(
        actor=None,
        course=request.course,
        image_version=version,
        flavor=flavor,
        persistence=payload.get("persistence", DesktopPool.Persistence.PERSISTENT),
        lead_minutes=int(payload.get("lead_minutes", 15)),
        shutdown_after_minutes=int(payload.get("shutdown_after_minutes", 10)),
        shutdown_deadline_minutes=payload.get("shutdown_deadline_minutes"),
        request=request,
        seats=int(payload.get("seats") or 0),
    )


def course_request_submit(
    *,
    actor: User,
    course: Course,
    image_version: ImageVersion,
    flavor: Flavor,
    persistence: str = DesktopPool.Persistence.PERSISTENT,
    lead_minutes: int = 15,
    shutdown_after_minutes: int = 10,
    shutdown_deadline_minutes: int | None = None,
    reason: str = "",
) -> ApprovalRequest:
    """The pool wizard's request: one seat per roster student; tenants checks the quotas and routes it."""
    from tenants.models import RequestKind
    from tenants.services import request_submit

    seats = RosterEntry.objects.filter(course=course).count()
    if not seats:
        raise InvalidInput(_("课程名单为空，请先导入学生名单。"), code=ErrorCode.ROSTER_EMPTY)
    policy = _pool_policy(persistence, lead_minutes, shutdown_after_minutes, shutdown_deadline_minutes)
    _refuse_a_second_pool(course)
    return request_submit(
        actor=actor,
        tenant=course.tenant,
        kind=RequestKind.COURSE_DESKTOPS if not flavor.gpus else RequestKind.GPU_ENVIRONMENT,
        title=ngettext("%(code)s 课程桌面（%(seats)s 座）", "%(code)s 课程桌面（%(seats)s 座）", seats)
        % {"code": course.code, "seats": seats},
        amounts=seat_amounts(flavor, seats),
        course=course,
        payload={
            "image_version": image_version.pk,
            "flavor": flavor.pk,
            **policy,
            "seats": seats,
        },
        reason=reason,
    )


def active_pool(course: Course) -> DesktopPool | None:
    return DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).select_related("course").first()


def course_links(*, course: Course, user: User) -> list[tuple[str, str]]:
    """tenants' hook: the course page links to its pool."""
    pool = active_pool(course)
    if pool is None:
        return []
    return [(_("课程桌面池"), reverse("classroom:pool", args=[pool.pk]))]


def pool_settings_update(
    *,
    actor: User | None,
    pool: DesktopPool,
    persistence: str | None = None,
    lead_minutes: int | None = None,
    shutdown_after_minutes: int | None = None,
    shutdown_deadline_minutes: int | None = None,
    leaver_disks: str | None = None,
) -> DesktopPool:
    require_manage(actor, pool)
    with transaction.atomic():
        pool = locks.pool_lock(pool.pk)
        changes = {}
        if persistence is not None:
            if persistence not in DesktopPool.Persistence.values:
                raise InvalidInput(_("未知的保留策略。"), code=ErrorCode.POOL_PERSISTENCE_INVALID)
            changes["persistence"] = persistence
        if leaver_disks is not None:
            if leaver_disks not in DesktopPool.LeaverDisks.values:
                raise InvalidInput(_("未知的数据盘处理方式。"), code=ErrorCode.POOL_LEAVER_DISKS_INVALID)
            changes["leaver_disks"] = leaver_disks
        asked = {
            "lead_minutes": lead_minutes,
            "shutdown_after_minutes": shutdown_after_minutes,
            "shutdown_deadline_minutes": shutdown_deadline_minutes,
        }
        # The offsets are checked together, as they will be: the new values over the pool's current ones.
        minutes = schedule_minutes(**{f: getattr(pool, f) if v is None else v for f, v in asked.items()})
        changes.update({f: minutes[f] for f, v in asked.items() if v is not None})
        for field, value in changes.items():
            setattr(pool, field, value)
        pool.save()
        event_record(action=Action.POOL_CHANGED, actor=actor, target=pool, tenant=pool.tenant, detail=changes)
    return pool

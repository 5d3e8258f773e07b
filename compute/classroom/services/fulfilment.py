"""Course-desktop requests: planned at submit (the flavor times the roster the pool will seat),
made into a pool once approved, and delivered only when the pool's desktops run.

tenants calls these through its hooks (registered in compute.classroom.apps). A GPU simulation
environment asked for with seats for a course is a pool with a GPU flavor; without them it is one
GPU desktop for the requester (compute.services.requests). The observer reports every seat's
desktop that is made or fails to the pool's request: all running → delivered; some failed →
partly delivered, with each seat's reason; all failed → failed, the requester told why.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.db import retry_on_deadlock
from common.errors import InvalidInput
from common.tasks import enqueue
from compute.classroom import task_names
from compute.classroom.errors import ErrorCode
from compute.classroom.models import DesktopPool, Seat
from compute.models import Desktop
from compute.quota import flavor_share
from compute.services import request_desktops as desktop_requests
from tenants.locks import request_lock
from tenants.models import ApprovalRequest, Course, RequestKind, RosterEntry
from tenants.quotas import ResourceAmounts
from tenants.services import request_hand_over, request_report

log = logging.getLogger(__name__)

_REPORTING = (ApprovalRequest.State.APPROVED, ApprovalRequest.State.PARTIAL, ApprovalRequest.State.FAILED)
_PENDING = (Desktop.State.REQUESTED, Desktop.State.PROVISIONING)


def _is_pool_request(request_kind: str, course: Course | None, payload: dict) -> bool:
    return course is not None and (request_kind == RequestKind.COURSE_DESKTOPS or "seats" in payload)


def plan_course_desktops(*, tenant, course, requester, payload: dict) -> tuple[ResourceAmounts, dict]:
    """A pool seats the course's roster: one desktop of the flavor per student on it."""
    from compute.classroom.services.pools import _pool_policy, _refuse_a_second_pool

    if course is None:
        raise InvalidInput(_("课程桌面申请必须选择课程。"), code=ErrorCode.REQUEST_PAYLOAD_INVALID)
    version, flavor = desktop_requests.request_objects(tenant=tenant, course=course, payload=payload)
    roster = RosterEntry.objects.filter(course=course).count()
    if not roster:
        raise InvalidInput(_("课程名单为空，请先导入学生名单。"), code=ErrorCode.ROSTER_EMPTY)
    # One seat per student at least; more asked for are spare seats.
    seats = max(roster, int(payload.get("seats") or 0))
    pool = _changed_pool(course, payload)
    if pool is None:
        _refuse_a_second_pool(course)
    policy = _pool_policy(
        payload.get("persistence", DesktopPool.Persistence.PERSISTENT),
        int(payload.get("lead_minutes", 15)),
        int(payload.get("shutdown_after_minutes", 10)),
        payload.get("shutdown_deadline_minutes"),
    )
    plan = {
        **payload,
        **policy,
        "image_version": version.pk,
        "image_name": str(version),
        "flavor": flavor.pk,
        "flavor_name": flavor.name,
        "seats": seats,
    }
    amounts = flavor_share(flavor, count=seats)
    if pool is not None:
        # A change takes only what the pool will take beyond what it holds now; nothing more
        # (same or smaller flavor, same roster) needs no approval (tenants.approvals).
        now = flavor_share(pool.flavor, count=pool.seats.filter(state=Seat.State.ACTIVE).count())
        amounts = ResourceAmounts(**{k: max(0, v - getattr(now, k)) for k, v in amounts.as_dict().items()})
        plan.update(
            {"pool": pool.pk, "change": True, "apply": "now" if payload.get("apply") == "now" else "next_class"}
        )
    return amounts, plan


def _changed_pool(course: Course, payload: dict) -> DesktopPool | None:
    if not payload.get("pool"):
        return None
    pool = DesktopPool.objects.filter(pk=payload["pool"], course=course, state=DesktopPool.State.ACTIVE).first()
    if pool is None:
        raise InvalidInput(_("要调整的桌面池不存在。"), code=ErrorCode.REQUEST_PAYLOAD_INVALID)
    return pool


def plan_gpu_environment(*, tenant, course, requester, payload: dict) -> tuple[ResourceAmounts, dict]:
    """Seats for a course: a pool of GPU desktops; otherwise one GPU desktop for the requester."""
    if _is_pool_request(RequestKind.GPU_ENVIRONMENT, course, payload):
        amounts, plan = plan_course_desktops(tenant=tenant, course=course, requester=requester, payload=payload)
        flavor_gpus = amounts.gpus
        if not flavor_gpus:
            raise InvalidInput(_("GPU 仿真环境需要带 GPU 的规格。"), code=ErrorCode.REQUEST_PAYLOAD_INVALID)
        return amounts, plan
    return desktop_requests.plan_gpu_desktop(tenant=tenant, course=course, requester=requester, payload=payload)


def fulfil_course_desktops(request: ApprovalRequest) -> None:
    """The fulfiller tenants calls once a course-desktop (or GPU) request is approved or retried:
    queue the pool's creation (or the retry of its failed seats); a GPU environment without
    seats is one desktop of the requester's."""
    if not _is_pool_request(request.kind, request.course, request.payload or {}):
        desktop_requests.fulfil_desktop_request(request)
        return
    enqueue(task_names.POOL_FULFIL, request.pk, queue="default")


@retry_on_deadlock  # beside the workers' reports of the same request (seen in the class bench)
def pool_request_progress(pool_id: int) -> ApprovalRequest | None:
    """Report the pool's seats to its request: how many desktops run, which failed and why.

    Reports of one request queue behind each other on its row lock and count the seats only then: two
    workers finishing the last two desktops at once no longer both count from before the other's
    report (the second used to find the request delivered and fail with InvalidTransition)."""
    pool = DesktopPool.objects.filter(pk=pool_id).only("pk", "request_id").first()
    if pool is None or pool.request_id is None:
        return None
    with transaction.atomic():
        request = request_lock(pool.request_id)
        if request.state not in _REPORTING:
            return None
        return _report_seats(pool, request)


def _report_seats(pool: DesktopPool, request: ApprovalRequest) -> ApprovalRequest:
    seats = list(pool.seats.filter(state=Seat.State.ACTIVE).select_related("desktop", "student"))
    failures, ready, pending = [], 0, 0
    for seat in seats:
        desktop = seat.desktop
        if desktop is None and not seat.error:
            pending += 1
        elif desktop is None or desktop.state == Desktop.State.ERROR:
            error = seat.error if desktop is None else (desktop.error_reason or desktop.last_error)
            failures.append({"name": seat.holder_name, "error": error})
        elif desktop.state in _PENDING:
            pending += 1
        else:
            ready += 1
    return request_report(
        request=request, ready=ready, failures=failures, pending=pending, detail={"pool": pool.pk, "seats": len(seats)}
    )


def pool_fulfil_again(request: ApprovalRequest) -> DesktopPool | None:
    """A change of a pool is applied; a retried request whose pool exists has its failed seats
    provisioned again. None: the request's pool is still to be made."""
    from compute.classroom.services.seats import pool_retry_failed

    if (request.payload or {}).get("change"):
        return pool_change_apply(request)
    pool = DesktopPool.objects.filter(request=request, state=DesktopPool.State.ACTIVE).first()
    if pool is None:
        return None
    pool_retry_failed(actor=None, pool=pool)
    pool_request_progress(pool.pk)
    return pool


def seat_desktop_observer(*, desktop, at, reason: str) -> None:
    """compute's observer of a seat's desktop: once it is made or fails, the pool's request hears of it;
    a seat being moved to the pool's flavor (``Seat.flavor_restart``) is resized once stopped and
    started once resized."""
    if desktop.course_id is None:
        return
    if reason != "created" and desktop.state in (Desktop.State.STOPPED, Desktop.State.ERROR):
        transaction.on_commit(lambda: seat_flavor_follow(desktop.pk))
    if reason not in ("provisioned", "failed"):
        return
    pool_ids = list(
        Seat.objects.filter(desktop_id=desktop.pk)
        .filter(~Q(pool__request=None), pool__request__state__in=_REPORTING)
        .values_list("pool_id", flat=True)
    )
    for pool_id in pool_ids:
        transaction.on_commit(lambda pool_id=pool_id: pool_request_progress(pool_id))


def _pool_change_save(request: ApprovalRequest, version, flavor) -> tuple[DesktopPool, dict]:
    """The pool takes the request's image, flavor and persistence, and reports to this request now."""
    from compute.classroom import locks
    from compute.classroom.services.seats import seats_wanted

    payload = request.payload
    with transaction.atomic():
        pool = locks.pool_lock(payload["pool"])
        request_hand_over(request=request, detail={"pool": pool.pk, "course": pool.course.code})
        changes = {
            "image": str(version) if pool.image_version_id != version.pk else None,
            "flavor": flavor.name if pool.flavor_id != flavor.pk else None,
            "persistence": payload.get("persistence") if payload.get("persistence") != pool.persistence else None,
        }
        changes = {k: v for k, v in changes.items() if v}
        seats = int(payload.get("seats") or 0)
        if seats and seats != seats_wanted(pool, pool.course.roster.count()):
            changes["seats"] = seats
        pool.image_version, pool.flavor = version, flavor
        pool.persistence = payload.get("persistence") or pool.persistence
        pool.seat_target = seats or pool.seat_target
        pool.request = request
        pool.save(update_fields=["image_version", "flavor", "persistence", "seat_target", "request"])
        event_record(
            action=Action.POOL_CHANGED,
            target=pool,
            tenant=pool.tenant,
            detail={**changes, "request": request.pk, "apply": payload.get("apply")},
        )
    return pool, changes


def _resize_stopped(pool: DesktopPool, flavor) -> None:
    """Stopped desktops take the new flavor now (nobody is using them); running ones keep theirs
    until the next class powers them on (``seat_flavor_restart``, from the schedule)."""
    from compute import services as compute_services

    for seat in pool.seats.filter(state=Seat.State.ACTIVE, desktop__state=Desktop.State.STOPPED).select_related(
        "desktop"
    ):
        if seat.desktop.flavor_id != flavor.pk:
            compute_services.desktop_resize(actor=pool.course.teacher, desktop=seat.desktop, flavor=flavor)


def seat_flavor_restart(*, pool: DesktopPool, seat_ids: list[int]) -> None:
    """Move these seats' desktops to the pool's flavor and start them: each is marked, then stopped
    (when running), resized once stopped and started once resized (``seat_flavor_follow``). Used by
    a change applied at once and by the schedule's power-on before a class."""
    from compute import services as compute_services

    if not seat_ids:
        return
    desktop_ids = list(Seat.objects.filter(pk__in=seat_ids, desktop__isnull=False).values_list("desktop_id", flat=True))
    stopping = {d.pk for d in compute_services.desktops_power(actor=None, desktops=desktop_ids, verb="stop")}
    stopped = set(Desktop.objects.filter(pk__in=desktop_ids, state=Desktop.State.STOPPED).values_list("pk", flat=True))
    # Only seats on their way: a desktop busy with something else is left alone (no mark that would
    # restart it at some later stop); the next class picks it up.
    moving = stopping | stopped
    Seat.objects.filter(desktop_id__in=moving).update(flavor_restart=True)
    for desktop_id in moving:
        transaction.on_commit(lambda desktop_id=desktop_id: seat_flavor_follow(desktop_id))


def seat_flavor_follow(desktop_id: int) -> Desktop | None:
    """The next step of a seat being moved to the pool's flavor: a stopped desktop of another flavor is
    resized; a stopped one of the pool's flavor is started and the seat done. A refusal of the resize
    (quota, no room on its host) starts it as it is, logged (the pool page still shows the pending
    flavor); a desktop in error ends it."""
    from common.errors import ServiceError
    from compute import services as compute_services

    seat = (
        Seat.objects.filter(desktop_id=desktop_id, state=Seat.State.ACTIVE, flavor_restart=True)
        .select_related("desktop", "pool__flavor", "pool__course__teacher")
        .first()
    )
    if seat is None or seat.desktop.state not in (Desktop.State.STOPPED, Desktop.State.ERROR):
        return None
    desktop = seat.desktop
    if desktop.state == Desktop.State.STOPPED and desktop.flavor_id != seat.pool.flavor_id:
        try:
            return compute_services.desktop_resize(
                actor=seat.pool.course.teacher, desktop=desktop, flavor=seat.pool.flavor
            )
        except ServiceError as exc:
            log.warning("seat %s keeps its flavor: %s", seat.pk, exc.message)
    with transaction.atomic():
        seat.flavor_restart = False
        seat.save(update_fields=["flavor_restart"])
        if desktop.state == Desktop.State.STOPPED:
            compute_services.desktops_power(actor=None, desktops=[desktop.pk], verb="start")
    return desktop


def pool_change_apply(request: ApprovalRequest) -> DesktopPool:
    """Apply an approved change of a course's pool: new settings, seats for the roster as it is, the
    flavor on stopped desktops. With "now" running desktops are restarted with the new flavor and a
    new image resets the seats at once (after class when one is in progress); otherwise running
    desktops keep their flavor until the next class powers them on, and a new image reaches each
    seat at its next reset."""
    from common.errors import Conflict
    from compute.classroom.services.power import pool_reset
    from compute.classroom.services.roster import pool_sync_roster

    version, flavor = desktop_requests.request_objects(
        tenant=request.tenant, course=request.course, payload=request.payload or {}
    )
    pool, changes = _pool_change_save(request, version, flavor)
    pool_sync_roster(actor=None, pool=pool)
    if "flavor" in changes:
        _resize_stopped(pool, flavor)
        if request.payload.get("apply") == "now":
            # At once: running desktops are stopped, resized and started again now.
            running = pool.seats.filter(state=Seat.State.ACTIVE, desktop__state=Desktop.State.RUNNING)
            with transaction.atomic():
                seat_flavor_restart(pool=pool, seat_ids=list(running.values_list("pk", flat=True)))
    if "image" in changes and request.payload.get("apply") == "now":
        try:
            pool_reset(actor=None, pool=pool)
        except Conflict:
            log.info("pool %s: in class, the new image waits for the next reset", pool.pk)
    pool_request_progress(pool.pk)
    return pool

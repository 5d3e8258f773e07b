"""Writes of a desktop's life as people ask for it: create, clone, power, reset, resize, retry, delete;
and for the classroom, which acts on many desktops for a course: power and reset in bulk, hand-over.

``actor`` is the person acting; the bulk services also take ``None``, the platform itself (the
class schedule), and record no audit event of their own: their caller records one for the whole
step (a pool powered on, a seat handed over) in the same transaction.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record, events_batched
from common.db import retry_on_deadlock
from common.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from common.tasks import enqueue
from compute import hooks, locks, networking, quota, selectors
from compute.errors import ComputeError
from compute.models import Desktop, Endpoint, Flavor, ImageVersion, Volume
from compute.placement import place
from compute.placement import resize_fit as place_resize
from compute.services.rules import require_manage
from network import selectors as network_selectors
from tenants import permissions as tenant_permissions
from tenants.models import RosterEntry

if TYPE_CHECKING:
    from tenants.models import Course, Tenant, User


def _vm_name(tenant: Tenant, owner: User | None) -> str:
    who = re.sub(r"[^a-z0-9]+", "-", (getattr(owner, "username", "") or "shared").lower()).strip("-")[:20]
    return f"cc-{tenant.slug[:12]}-{who}-{secrets.token_hex(3)}"


def _desktop_task(desktop: Desktop, name: str, *args, **kwargs) -> str:
    """Start ``compute.tasks.desktops.<name>`` for the desktop after the commit, on its site's queue."""
    return enqueue(
        f"compute.tasks.desktops.{name}", desktop.pk, *args, queue=desktop.endpoint.site.celery_queue, **kwargs
    )


def _require_version_ready(image_version: ImageVersion) -> None:
    """Under a shared lock on the version: it may have been retired since it was read (the classroom
    retires superseded course images once no desktop uses them); one retiring it now waits for us."""
    if locks.image_version_share_lock(image_version.pk) != ImageVersion.Status.READY:
        raise InvalidInput(_("镜像版本尚不可用。"), code=ComputeError.IMAGE_NOT_READY)


def _check_course(*, owner: User, tenant: Tenant, course: Course) -> None:
    """A desktop's cost and quota go to its course: only a desktop of someone on that course's roster
    (or of a person who runs the course: its teacher's authoring desktop) may be charged to it."""
    if course.tenant_id != tenant.pk:
        raise InvalidInput(_("课程不属于该租户。"), code=ComputeError.COURSE_TENANT_MISMATCH)
    if RosterEntry.objects.filter(course=course, user=owner).exists():
        return
    if not tenant_permissions.can_manage_course(owner, course):
        raise InvalidInput(
            _("桌面只能关联到使用者所在名单的课程。"),
            code=ComputeError.COURSE_NOT_ENROLLED,
            detail={"field": "course"},
        )


def _check_request(
    *, actor: User, tenant: Tenant, image_version: ImageVersion, flavor: Flavor, owner: User, course: Course | None
) -> None:
    """Whether ``actor`` may have this desktop made for ``owner``: refused with the reason otherwise."""
    if not selectors.tenant_creatable_for(actor, tenant):
        raise NotFound(_("租户不存在。"), code=ComputeError.TENANT_NOT_FOUND)
    if owner.pk != actor.pk and not (
        selectors.is_system_admin(actor)
        or selectors.tenants_with_role(actor, "tenant_admin").filter(pk=tenant.pk).exists()
        or (course is not None and tenant_permissions.teaches(actor, course))
    ):
        raise Forbidden(_("只能为自己创建桌面。"), code=ComputeError.DESKTOP_OWNER_FORBIDDEN)
    if course is not None:
        _check_course(owner=owner, tenant=tenant, course=course)
    if image_version.status != ImageVersion.Status.READY:
        raise InvalidInput(_("镜像版本尚不可用。"), code=ComputeError.IMAGE_NOT_READY)
    if not selectors.image_visible_to_tenant(image_version.image, tenant=tenant, course=course):
        raise InvalidInput(_("未知镜像。"), code=ComputeError.IMAGE_NOT_FOUND)
    if not selectors.flavor_usable_by_tenant(flavor, tenant=tenant):
        raise InvalidInput(_("未知规格。"), code=ComputeError.FLAVOR_NOT_FOUND)
    if image_version.size_gib > flavor.disk_gib:
        raise InvalidInput(
            _("规格的系统盘（%(flavor)s GiB）小于镜像（%(image)s GiB）。")
            % {"flavor": flavor.disk_gib, "image": image_version.size_gib},
            code=ComputeError.FLAVOR_DISK_TOO_SMALL,
        )


@retry_on_deadlock
def desktop_create(
    *,
    actor: User,
    tenant: Tenant,
    image_version: ImageVersion,
    flavor: Flavor,
    owner: User | None = None,
    course: Course | None = None,
    name: str = "",
    endpoint: Endpoint | None = None,
    start: bool = True,
) -> Desktop:
    """Request a desktop: validate, place, reserve quota, and queue its provisioning. ``start`` False: the
    VM is made stopped (a course desktop made outside class waits for the schedule to power it on)."""
    owner = owner or actor
    _check_request(actor=actor, tenant=tenant, image_version=image_version, flavor=flavor, owner=owner, course=course)
    name = (name or f"{image_version.image.name}-{getattr(owner, 'username', '')}")[:100]
    hooks.desktop_create_check(tenant=tenant, course=course)  # e.g. billing's blocking budgets
    with transaction.atomic():
        _require_version_ready(image_version)
        placement = place(flavor=flavor, image_version=image_version, endpoint=endpoint)
        desktop = Desktop(
            name=name,
            vm_name=_vm_name(tenant, owner),
            tenant=tenant,
            owner=owner,
            course=course,
            image_version=image_version,
            flavor=flavor,
            endpoint=placement.endpoint,
            host=placement.host,
            storage_pool=placement.storage_pool,
            vcpus=flavor.vcpus,
            memory_mib=flavor.memory_mib,
            disk_gib=flavor.disk_gib,
            gpus=flavor.gpus,
            gpu_device=placement.gpu_device,
            created_by=actor,
        )
        desktop.quota_reservation = quota.desktop_quota_reserve(actor=actor, desktop=desktop)
        desktop.provision()
        desktop.save()
        # Its NIC's IP and MAC from the tenant's network (none: the endpoint's default network).
        networking.desktop_nics_allocate(desktop=desktop)
        desktop.task_id = _desktop_task(desktop, "desktop_provision", **({} if start else {"start": False}))
        desktop.save(update_fields=["task_id"])
        hooks.desktop_changed(desktop=desktop, reason="created")
        event_record(
            action=Action.DESKTOP_CREATED,
            actor=actor,
            target=desktop,
            tenant=tenant,
            detail={"flavor": flavor.name, "image": str(image_version), "endpoint": placement.endpoint.name},
        )
    return desktop


def _check_owners(*, actor: User, tenant: Tenant, image_version, flavor, course: Course, owners: list[User]) -> None:
    """``_check_request`` for a batch of owners of desktops of the same course: the checks that do not
    depend on who the owner is run once (for the first owner, and once more for the actor's own desktop
    when another's precedes it); the roster is read for all owners in one query."""
    for first in {owner.pk == actor.pk: owner for owner in reversed(owners)}.values():
        _check_request(
            actor=actor, tenant=tenant, image_version=image_version, flavor=flavor, owner=first, course=course
        )
    enrolled = set(RosterEntry.objects.filter(course=course, user__in=owners).values_list("user_id", flat=True))
    for owner in {o.pk: o for o in owners if o.pk not in enrolled}.values():
        _check_course(owner=owner, tenant=tenant, course=course)


@retry_on_deadlock
def desktops_create(
    *,
    actor: User,
    tenant: Tenant,
    image_version: ImageVersion,
    flavor: Flavor,
    course: Course,
    wanted: list[tuple[User, str]],
    endpoint: Endpoint | None = None,
    start: bool = True,
) -> list[Desktop]:
    """``desktop_create`` for a batch of desktops of one course (a pool's seats): ``wanted`` is (owner,
    name) per desktop. All are requested in one transaction, or none: the first refusal (capacity,
    budget, quota) is raised and nothing of the batch is left. Each desktop is placed after the one
    before it is written (placement counts it), has its own reservation, NIC, task and audit event;
    the checks, the budget, the quota rows and the audit chain's head are taken once for the batch."""
    owners = [owner for owner, _name in wanted]
    _check_owners(actor=actor, tenant=tenant, image_version=image_version, flavor=flavor, course=course, owners=owners)
    hooks.desktop_create_check(tenant=tenant, course=course)
    made: list[Desktop] = []
    with transaction.atomic(), events_batched():
        _require_version_ready(image_version)
        for owner, name in wanted:
            made.append(
                Desktop(
                    name=name[:100],
                    vm_name=_vm_name(tenant, owner),
                    tenant=tenant,
                    owner=owner,
                    course=course,
                    image_version=image_version,
                    flavor=flavor,
                    vcpus=flavor.vcpus,
                    memory_mib=flavor.memory_mib,
                    disk_gib=flavor.disk_gib,
                    gpus=flavor.gpus,
                    created_by=actor,
                )
            )
        reservations = quota.desktops_quota_reserve(actor=actor, desktops=made)
        network = network_selectors.default_network_for(tenant)
        endpoints: dict[int, Endpoint] = {}  # one instance per endpoint: its site is read once (the task's queue)
        for desktop, reservation in zip(made, reservations, strict=True):
            placement = place(flavor=flavor, image_version=image_version, endpoint=endpoint)
            desktop.endpoint = endpoints.setdefault(placement.endpoint.pk, placement.endpoint)
            desktop.host = placement.host
            desktop.storage_pool, desktop.gpu_device = placement.storage_pool, placement.gpu_device
            desktop.quota_reservation = reservation
            desktop.provision()
            desktop.save()
            if network is not None:
                networking.desktop_nics_allocate(desktop=desktop, network=network)
            desktop.task_id = _desktop_task(desktop, "desktop_provision", **({} if start else {"start": False}))
            desktop.save(update_fields=["task_id"])
            event_record(
                action=Action.DESKTOP_CREATED,
                actor=actor,
                target=desktop,
                tenant=tenant,
                detail={"flavor": flavor.name, "image": str(image_version), "endpoint": placement.endpoint.name},
            )
        hooks.desktops_changed(desktops=made, reason="created")
    return made


def desktop_clone(*, actor: User, desktop: Desktop, name: str = "") -> Desktop:
    """A new desktop whose system disk is a copy of this (stopped) desktop's, for the same owner and course.

    The source is held (busy) until the copy is made, so nobody starts it halfway; the
    clone is placed on the source's endpoint, where the disk is, and takes its own quota.
    """
    require_manage(actor, desktop)
    if desktop.image_version is None or desktop.flavor is None:
        raise InvalidInput(_("接管的虚拟机没有镜像和规格，不能克隆。"), code=ComputeError.DESKTOP_NOT_CLONABLE)
    with transaction.atomic():
        source = locks.desktop_lock(desktop.pk)
        if source.state != Desktop.State.STOPPED:
            raise InvalidTransition(
                _("请先关机再克隆：运行中的磁盘无法得到一致的副本。"),
                code=ComputeError.DESKTOP_MUST_BE_STOPPED,
                detail={"state": source.state, "action": "clone"},
            )
        clone = desktop_create(
            actor=actor,
            tenant=source.tenant,
            image_version=source.image_version,
            flavor=source.flavor,
            owner=source.owner or actor,
            course=source.course,
            name=name or f"{source.name}-clone",
            endpoint=source.endpoint,
        )
        clone.cloned_from = source
        clone.save(update_fields=["cloned_from"])
        source.occupy(action=_("克隆"))
        source.task_id = clone.task_id
        source.save()
        event_record(
            action=Action.DESKTOP_CLONED,
            actor=actor,
            target=clone,
            tenant=source.tenant,
            detail={"source": source.pk},
        )
    return clone


# --- power ---------------------------------------------------------------------------------------

_POWER_ACTIONS = {"start": Action.DESKTOP_STARTED, "stop": Action.DESKTOP_STOPPED, "reboot": Action.DESKTOP_REBOOTED}


def _power_locked(desktop: Desktop, verb: str) -> None:
    desktop.power(verb)
    desktop.task_id = _desktop_task(desktop, "desktop_power", verb)
    desktop.save()


def _power(*, actor: User, desktop: Desktop, verb: str) -> Desktop:
    require_manage(actor, desktop)
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop.pk)
        _power_locked(desktop, verb)
        event_record(action=_POWER_ACTIONS[verb], actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


def desktop_start(*, actor: User, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="start")


def desktop_stop(*, actor: User, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="stop")


def desktop_reboot(*, actor: User, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="reboot")


# The one map from a power verb to its service: compute's and the classroom's views and services use it.
POWER_SERVICES = {"start": desktop_start, "stop": desktop_stop, "reboot": desktop_reboot}


def _locked_for(actor: User | None, desktops: Iterable[Desktop | int]) -> list[Desktop]:
    """The desktops (rows or ids) locked in id order; a person must be allowed to act on each."""
    locked = locks.desktops_lock(getattr(d, "pk", d) for d in desktops)
    if actor is not None:
        for desktop in locked:
            require_manage(actor, desktop)
    return locked


def desktops_power(*, actor: User | None, desktops: Iterable[Desktop | int], verb: str) -> list[Desktop]:
    """Start, stop or reboot many desktops at once (a teacher's whole pool, the class schedule): each whose
    state allows the verb changes, the others are left as they are. Returns the desktops that changed."""
    if verb not in Desktop.POWER_VERBS:
        raise InvalidInput(_("未知操作。"), code=ComputeError.POWER_VERB_INVALID, detail={"verb": verb})
    with transaction.atomic():
        changed = [d for d in _locked_for(actor, desktops) if d.can_power(verb)]
        for desktop in changed:
            _power_locked(desktop, verb)
    return changed


# --- reset and hand-over ----------------------------------------------------------------------------


def _reset_locked(desktop: Desktop, *, image_version: ImageVersion | None = None, **disks) -> None:
    """A fresh system disk for a locked, live desktop: a new linked clone of its golden image, or, when
    ``image_version`` is another version, the VM made again from that one. The old disk is destroyed.
    ``disks`` (``leaving``, ``drop``: volume ids) are data disks the task takes off the VM first."""
    if image_version is not None and image_version.pk != desktop.image_version_id:
        _require_version_ready(image_version)
        desktop.occupy(action=_("重置"))
        desktop.image_version = image_version
        desktop.task_id = _desktop_task(desktop, "desktop_rebuild", **disks)
    else:
        if desktop.image_version_id is None:
            raise InvalidInput(_("接管的虚拟机没有黄金镜像，不能重置。"), code=ComputeError.DESKTOP_NOT_RESETTABLE)
        desktop.occupy(action=_("重置"))
        desktop.task_id = _desktop_task(desktop, "desktop_reset", **disks)
    desktop.save()


def _data_disks_leave(desktop: Desktop, *, keep: bool) -> dict:
    """The data disks on a desktop that changes hands come off it (the reset task detaches them): kept,
    detached, for their owner (the previous one), or deleted (wiped) with ``keep`` False. A vCenter disk
    is a file of its VM and cannot be kept. Returns the reset task's ``leaving`` and ``drop`` ids."""
    leaving, drop = [], []
    for volume in locks.desktop_volumes_lock(desktop.pk, exclude_state=Volume.State.DELETED):
        if volume.state not in (Volume.State.ATTACHED, Volume.State.ERROR):
            continue
        volume.begin_detach()
        volume.save(update_fields=["state"])
        hooks.volume_changed(volume=volume, reason="detaching")
        leaving.append(volume.pk)
        if not keep or not volume.volume_name:
            drop.append(volume.pk)
    return {"leaving": leaving, "drop": drop} if leaving else {}


def desktop_reset(*, actor: User, desktop: Desktop) -> Desktop:
    """Put a fresh linked clone of the golden image in place of the system disk (the VM stops first)."""
    require_manage(actor, desktop)
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop.pk)
        _reset_locked(desktop)
        event_record(action=Action.DESKTOP_RESET, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


def desktops_reset(
    *, actor: User | None, desktops: Iterable[Desktop | int], image_version: ImageVersion | None = None
) -> list[Desktop]:
    """Reset many desktops to the golden image (a pool after class): each live one gets a fresh system disk,
    from ``image_version`` when that is another version than its own; the others (busy, in error) are left.
    Returns the desktops reset."""
    with transaction.atomic():
        reset = [d for d in _locked_for(actor, desktops) if d.is_live]
        for desktop in reset:
            _reset_locked(desktop, image_version=image_version)
    return reset


def desktop_hand_over(
    *,
    actor: User | None,
    desktop: Desktop,
    owner: User,
    name: str = "",
    image_version: ImageVersion | None = None,
    keep_data_disks: bool = True,
) -> Desktop:
    """Give a live desktop to another person with nothing of the previous owner's left on it (等保
    剩余信息保护): its system disk reset (from ``image_version`` when that is another version than its
    own), and its data disks taken off, kept detached for the previous owner or, with
    ``keep_data_disks`` False, deleted and wiped.

    Usage is metered to the owner of the moment: billing closes the previous owner's interval and
    opens the new one's here, in this transaction. A desktop that is not live is refused.
    """
    with transaction.atomic():
        (desktop,) = _locked_for(actor, [desktop])
        if not desktop.is_live:
            desktop._require(*Desktop.LIVE, action=_("转交"))
        disks = _data_disks_leave(desktop, keep=keep_data_disks)
        _reset_locked(desktop, image_version=image_version, **disks)
        desktop.owner = owner
        desktop.name = (name or desktop.name)[:100]
        desktop.save()
        hooks.desktop_changed(desktop=desktop, at=timezone.now(), reason="handed_over")
    return desktop


# --- resize, retry, delete ---------------------------------------------------------------------------


@retry_on_deadlock
def desktop_resize(*, actor: User, desktop: Desktop, flavor: Flavor) -> Desktop:
    """Give a stopped desktop another flavor's vCPU, memory and GPU profile (its system disk keeps its size).

    Only the growth is checked against the quotas (the desktop already holds its current
    share); the hypervisor change runs in a task, and the desktop's sizes, quota share and
    metering change when it has happened.
    """
    require_manage(actor, desktop)
    if not selectors.flavor_usable_by_tenant(flavor, tenant=desktop.tenant):
        raise InvalidInput(_("未知规格。"), code=ComputeError.FLAVOR_NOT_FOUND)
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop.pk)
        if (desktop.vcpus, desktop.memory_mib, desktop.gpus, desktop.flavor_id) == (
            flavor.vcpus,
            flavor.memory_mib,
            flavor.gpus,
            flavor.pk,
        ):
            raise InvalidInput(_("桌面已经是这个规格。"), code=ComputeError.DESKTOP_SAME_FLAVOR)
        desktop.begin_resize()
        gpu_device = place_resize(desktop=desktop, flavor=flavor)
        hold = quota.resize_quota_hold(
            actor=actor, desktop=desktop, vcpus=flavor.vcpus, memory_mib=flavor.memory_mib, gpus=flavor.gpus
        )
        desktop.task_id = _desktop_task(desktop, "desktop_resize", flavor.pk, gpu_device, hold)
        desktop.save()
        event_record(
            action=Action.DESKTOP_RESIZED,
            actor=actor,
            target=desktop,
            tenant=desktop.tenant,
            detail={
                "desktop": desktop.pk,
                "from": {
                    "flavor": desktop.flavor.name if desktop.flavor_id else "",
                    "vcpus": desktop.vcpus,
                    "memory_mib": desktop.memory_mib,
                    "gpus": desktop.gpus,
                },
                "to": {
                    "flavor": flavor.name,
                    "vcpus": flavor.vcpus,
                    "memory_mib": flavor.memory_mib,
                    "gpus": flavor.gpus,
                },
            },
        )
    return desktop


@retry_on_deadlock
def desktop_retry(*, actor: User, desktop: Desktop, start: bool = True) -> Desktop:
    """Provision a desktop in error again (its VM, if half made, is reused or recreated); ``start`` as for
    ``desktop_create``."""
    require_manage(actor, desktop)
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop.pk)
        if desktop.state != Desktop.State.ERROR:
            desktop._require(Desktop.State.ERROR, action=_("重试"))
        if not desktop.quota_reservation:
            desktop.quota_reservation = quota.desktop_quota_reserve(actor=actor, desktop=desktop)
        desktop.provision()
        desktop.attempts = 0
        desktop.task_id = _desktop_task(desktop, "desktop_provision", **({} if start else {"start": False}))
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="retried")
        event_record(action=Action.DESKTOP_RETRIED, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


@retry_on_deadlock
def desktop_delete(*, actor: User, desktop: Desktop, keep_data_disks: bool = False) -> Desktop:
    """Delete the desktop: the VM and its system disk (wiped), and its data disks with it, unless
    ``keep_data_disks``: then a libvirt data disk stays, detached, for its owner."""
    require_manage(actor, desktop)
    with transaction.atomic():
        desktop = locks.desktop_lock(desktop.pk)
        desktop.begin_deletion()
        desktop.task_id = _desktop_task(
            desktop, "desktop_destroy", **({"keep_volumes": True} if keep_data_disks else {})
        )
        desktop.save()
        event_record(action=Action.DESKTOP_DELETED, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop

"""Writes of a desktop's life as people ask for it: create, clone, power, reset, resize, retry, delete."""

import re
import secrets

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.db import retry_on_deadlock, share_lock_status
from common.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from common.tasks import enqueue
from compute import hooks, networking, quota, selectors
from compute.errors import ComputeError
from compute.models import Desktop, Endpoint, Flavor, ImageVersion
from compute.placement import place
from compute.placement import resize_fit as place_resize
from compute.services.rules import require_manage


def _vm_name(tenant, owner) -> str:
    who = re.sub(r"[^a-z0-9]+", "-", (getattr(owner, "username", "") or "shared").lower()).strip("-")[:20]
    return f"cc-{tenant.slug[:12]}-{who}-{secrets.token_hex(3)}"


@retry_on_deadlock
def desktop_create(
    *,
    actor,
    tenant,
    image_version: ImageVersion,
    flavor: Flavor,
    owner=None,
    course=None,
    name: str = "",
    endpoint: Endpoint | None = None,
) -> Desktop:
    """Request a desktop: validate, place, reserve quota, and queue its provisioning."""
    owner = owner or actor
    if not selectors.tenant_creatable_for(actor, tenant):
        raise NotFound(_("租户不存在。"), code=ComputeError.TENANT_NOT_FOUND)
    if owner.pk != actor.pk and not (
        selectors.is_system_admin(actor)
        or selectors.tenants_with_role(actor, "tenant_admin").filter(pk=tenant.pk).exists()
        or (course is not None and course.teacher_id == actor.pk)
    ):
        raise Forbidden(_("只能为自己创建桌面。"), code=ComputeError.DESKTOP_OWNER_FORBIDDEN)
    if course is not None and course.tenant_id != tenant.pk:
        raise InvalidInput(_("课程不属于该租户。"), code=ComputeError.COURSE_TENANT_MISMATCH)
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
    name = (name or f"{image_version.image.name}-{getattr(owner, 'username', '')}")[:100]
    hooks.desktop_create_check(tenant=tenant, course=course)  # e.g. billing's blocking budgets
    with transaction.atomic():
        # Checked again under a shared lock: the version may have been retired since (the
        # classroom retires superseded course images once no desktop uses them).
        if share_lock_status(ImageVersion, image_version.pk) != ImageVersion.Status.READY:
            raise InvalidInput(_("镜像版本尚不可用。"), code=ComputeError.IMAGE_NOT_READY)
        placement = place(flavor=flavor, image_version=image_version, endpoint=endpoint)
        reservation = quota.desktop_quota_reserve(
            actor=actor,
            tenant=tenant,
            course=course,
            owner=owner,
            vcpus=flavor.vcpus,
            memory_mib=flavor.memory_mib,
            disk_gib=flavor.disk_gib,
            gpus=flavor.gpus,
        )
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
            quota_reservation=reservation,
            created_by=actor,
        )
        desktop.provision()
        desktop.save()
        # Its NIC's IP and MAC from the tenant's network (none: the endpoint's default network).
        networking.desktop_nics_allocate(desktop=desktop)
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_provision", desktop.pk, queue=placement.endpoint.site.celery_queue
        )
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


def desktop_clone(*, actor, desktop: Desktop, name: str = "") -> Desktop:
    """A new desktop whose system disk is a copy of this (stopped) desktop's, for the same owner and course.

    The source is held (busy) until the copy is made, so nobody starts it halfway; the
    clone is placed on the source's endpoint, where the disk is, and takes its own quota.
    """
    require_manage(actor, desktop)
    if desktop.image_version is None or desktop.flavor is None:
        raise InvalidInput(_("接管的虚拟机没有镜像和规格，不能克隆。"), code=ComputeError.DESKTOP_NOT_CLONABLE)
    with transaction.atomic():
        source = Desktop.objects.locked(desktop.pk)
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


_VERB_ACTIONS = {
    "start": Action.DESKTOP_STARTED,
    "stop": Action.DESKTOP_STOPPED,
    "reboot": Action.DESKTOP_REBOOTED,
}


def _power(*, actor, desktop: Desktop, verb: str) -> Desktop:
    require_manage(actor, desktop)
    action = _VERB_ACTIONS[verb]
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        getattr(desktop, verb)()
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_power", desktop.pk, verb, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        event_record(action=action, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


def desktop_start(*, actor, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="start")


def desktop_stop(*, actor, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="stop")


def desktop_reboot(*, actor, desktop: Desktop) -> Desktop:
    return _power(actor=actor, desktop=desktop, verb="reboot")


def desktop_reset(*, actor, desktop: Desktop) -> Desktop:
    """Put a fresh linked clone of the golden image in place of the system disk (the VM stops first)."""
    require_manage(actor, desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        if desktop.image_version is None:
            raise InvalidInput(_("接管的虚拟机没有黄金镜像，不能重置。"), code=ComputeError.DESKTOP_NOT_RESETTABLE)
        desktop.occupy(action=_("重置"))
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_reset", desktop.pk, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        event_record(action=Action.DESKTOP_RESET, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


@retry_on_deadlock
def desktop_resize(*, actor, desktop: Desktop, flavor: Flavor) -> Desktop:
    """Give a stopped desktop another flavor's vCPU, memory and GPU profile (its system disk keeps its size).

    Only the growth is checked against the quotas (the desktop already holds its current
    share); the hypervisor change runs in a task, and the desktop's sizes, quota share and
    metering change when it has happened.
    """
    require_manage(actor, desktop)
    if not selectors.flavor_usable_by_tenant(flavor, tenant=desktop.tenant):
        raise InvalidInput(_("未知规格。"), code=ComputeError.FLAVOR_NOT_FOUND)
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
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
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_resize",
            desktop.pk,
            flavor.pk,
            gpu_device,
            hold,
            queue=desktop.endpoint.site.celery_queue,
        )
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
def desktop_retry(*, actor, desktop: Desktop) -> Desktop:
    """Provision a desktop in error again (its VM, if half made, is reused or recreated)."""
    require_manage(actor, desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        if desktop.state != Desktop.State.ERROR:
            desktop._require(Desktop.State.ERROR, action=_("重试"))
        if not desktop.quota_reservation:
            desktop.quota_reservation = quota.desktop_quota_reserve(
                actor=actor,
                tenant=desktop.tenant,
                course=desktop.course,
                owner=desktop.owner,
                vcpus=desktop.vcpus,
                memory_mib=desktop.memory_mib,
                disk_gib=desktop.disk_gib,
                gpus=desktop.gpus,
            )
        desktop.provision()
        desktop.attempts = 0
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_provision", desktop.pk, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        hooks.desktop_changed(desktop=desktop, reason="retried")
        event_record(action=Action.DESKTOP_RETRIED, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop


@retry_on_deadlock
def desktop_delete(*, actor, desktop: Desktop) -> Desktop:
    require_manage(actor, desktop)
    with transaction.atomic():
        desktop = Desktop.objects.locked(desktop.pk)
        desktop.begin_deletion()
        desktop.task_id = enqueue(
            "compute.tasks.desktops.desktop_destroy", desktop.pk, queue=desktop.endpoint.site.celery_queue
        )
        desktop.save()
        event_record(action=Action.DESKTOP_DELETED, actor=actor, target=desktop, tenant=desktop.tenant)
    return desktop

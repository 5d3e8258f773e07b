"""Golden-image authoring: a teacher's own desktop to install a lab's software on, published as the
next version of the course's image, and the course versions nothing uses any more retired (their
golden volume deleted from the hypervisor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidTransition
from common.tasks import enqueue
from compute import services as compute_services
from compute.classroom import locks, task_names
from compute.classroom.errors import ErrorCode
from compute.classroom.models import AuthoringSession, DesktopPool
from compute.models import Desktop, Endpoint, Flavor, Image, ImageVersion, Visibility
from tenants import permissions as tenant_permissions
from tenants.models import Course

if TYPE_CHECKING:
    from tenants.models import Tenant, User


def authoring_start(*, actor: User, course: Course, image_version: ImageVersion, flavor: Flavor) -> AuthoringSession:
    """A desktop of the teacher's own, from an image version, to install a lab's software on."""
    if not tenant_permissions.can_manage_course(actor, course):
        raise Forbidden(_("只有课程教师可以制作课程镜像。"), code=ErrorCode.POOL_FORBIDDEN)
    desktop = compute_services.desktop_create(
        actor=actor,
        tenant=course.tenant,
        image_version=image_version,
        flavor=flavor,
        owner=actor,
        course=course,
        name=f"{course.code}-authoring",
    )
    with transaction.atomic():
        session = AuthoringSession.objects.create(
            course=course, teacher=actor, source_version=image_version, desktop=desktop
        )
        event_record(
            action=Action.AUTHORING_STARTED,
            actor=actor,
            target=desktop,
            tenant=course.tenant,
            detail={"course": course.code, "image": str(image_version)},
        )
    return session


def system_volume(desktop: Desktop) -> str:
    for disk in (desktop.hardware or {}).get("disks", []):
        if disk.get("target") == "vda" and disk.get("volume"):
            return disk["volume"]
    return f"{desktop.vm_name}-system.qcow2"


def authoring_publish(*, actor: User, session: AuthoringSession) -> AuthoringSession:
    """Publish the authoring desktop's disk as the image's next version (the desktop must be shut down,
    so the copy is consistent). Pools of the course move to it at their next reset outside class."""
    if not tenant_permissions.can_manage_course(actor, session.course):
        raise Forbidden(_("只有课程教师可以发布课程镜像。"), code=ErrorCode.POOL_FORBIDDEN)
    with transaction.atomic():
        session = locks.authoring_lock(session.pk)
        desktop = Desktop.objects.select_related("endpoint__site").get(pk=session.desktop_id)
        if session.state not in (AuthoringSession.State.ACTIVE, AuthoringSession.State.FAILED):
            raise Conflict(_("该镜像已在发布或已发布。"), code=ErrorCode.AUTHORING_NOT_ACTIVE)
        if desktop.state != Desktop.State.STOPPED:
            raise Conflict(_("请先关闭制作用的桌面，再发布镜像。"), code=ErrorCode.AUTHORING_DESKTOP_RUNNING)
        if desktop.endpoint.kind != Endpoint.Kind.LIBVIRT:
            raise Conflict(_("目前只能在 libvirt 端点上发布镜像。"), code=ErrorCode.AUTHORING_UNSUPPORTED)
        session.state = AuthoringSession.State.PUBLISHING
        session.last_error = ""
        session.task_id = enqueue(task_names.AUTHORING_PUBLISH, session.pk, queue=desktop.endpoint.site.celery_queue)
        session.save()
    return session


def _course_image(course: Course, source: Image, *, actor: User) -> Image:
    """The image a course's publication becomes a version of: the course's own.

    A teacher may start from the platform's or the college's image, but what the course installed
    on it is the course's: published as a version of the shared image, every tenant would see it.
    The course's image is made at its first publication and named after the image it came from.
    """
    if source.visibility == Visibility.COURSE and source.course_id == course.pk:
        return source
    name = _("%(image)s（%(course)s）") % {"image": source.name, "course": course.code}
    existing = Image.objects.filter(visibility=Visibility.COURSE, course=course, name=name[:100]).first()
    if existing is not None:
        return existing
    return compute_services.image_create(
        actor=actor,
        name=name[:100],
        visibility=Visibility.COURSE,
        course=course,
        os_type=source.os_type,
        description=_("由课程镜像制作发布，基于“%(image)s”。") % {"image": source.name},
    )


def authoring_publish_finish(*, session_id: int, volume: str = "", size_bytes: int = 0, error: str = "") -> None:
    with transaction.atomic():
        session = locks.authoring_lock(session_id)
        if session.state != AuthoringSession.State.PUBLISHING:
            return
        if error:
            session.state = AuthoringSession.State.FAILED
            session.last_error = error[:2000]
            session.save(update_fields=["state", "last_error"])
            return
        source = session.source_version
        image = _course_image(session.course, source.image, actor=session.teacher)
        version = compute_services.image_version_register(
            actor=session.teacher,
            image=image,
            endpoint=source.endpoint,
            pool=source.pool,
            volume=volume,
            size_bytes=size_bytes or source.size_bytes,
        )
        session.state = AuthoringSession.State.PUBLISHED
        session.published_version = version
        session.save(update_fields=["state", "published_version"])
        moved = DesktopPool.objects.filter(
            course=session.course, state=DesktopPool.State.ACTIVE, image_version__image__in=[source.image, image]
        ).update(image_version=version)
        event_record(
            action=Action.IMAGE_PUBLISHED,
            actor=session.teacher,
            target=version,
            tenant=session.course.tenant,
            detail={"course": session.course.code, "from": str(source), "pools": moved},
        )


def _versions_in_use(version_ids: set[int]) -> set[int]:
    """Of these versions, those a desktop that is not deleted (seat, authoring or any other) or a
    pool still refers to: their golden image backs live disks or will back the next reset."""
    if not version_ids:
        return set()
    return set(
        Desktop.objects.filter(image_version_id__in=version_ids)
        .exclude(state=Desktop.State.DELETED)
        .values_list("image_version_id", flat=True)
    ) | set(DesktopPool.objects.filter(image_version_id__in=version_ids).values_list("image_version_id", flat=True))


def version_in_use(version: ImageVersion) -> bool:
    return bool(_versions_in_use({version.pk}))


def _version_tenant(version: ImageVersion) -> Tenant:
    """The tenant whose course authored the version (the image itself may be the platform's)."""
    session = AuthoringSession.objects.filter(published_version=version).select_related("course__tenant").first()
    return session.course.tenant if session else version.image.tenant


def versions_retire_unused() -> int:
    """Course-authored versions a newer publication superseded retire once nothing uses them, and
    their golden volume is deleted from the hypervisor (``image_version_volume_delete``).

    Only versions this app made (published from an authoring desktop) are retired: the version a
    teacher started from may be the platform's base image, which other courses and tenants use and
    which the system administrator manages."""
    published = AuthoringSession.objects.filter(state=AuthoringSession.State.PUBLISHED)
    authored = set(published.values_list("published_version_id", flat=True))
    superseded = set(published.values_list("source_version_id", flat=True)) & authored
    candidates = superseded - _versions_in_use(superseded)
    retired = 0
    for version in ImageVersion.objects.filter(pk__in=candidates, status=ImageVersion.Status.READY).order_by("pk"):
        with transaction.atomic():
            try:
                # compute asks ``version_in_use`` again under the version's lock: a desktop may have come.
                version = compute_services.image_version_retire(
                    actor=None, version=version, tenant=_version_tenant(version), in_use=version_in_use
                )
            except (Conflict, InvalidTransition):
                continue
            if version.volume:
                enqueue(task_names.IMAGE_VERSION_VOLUME_DELETE, version.pk, queue=version.endpoint.site.celery_queue)
        retired += 1
    return retired


def version_volume_deleted(*, version_id: int, error: str = "", kept: str = "") -> None:
    """What the volume deletion task found: deleted, kept (still a backing file), or failed."""
    version = ImageVersion.objects.select_related("image").get(pk=version_id)
    compute_services.image_version_volume_deleted(
        version_id=version_id, tenant=_version_tenant(version), error=error, kept=kept
    )

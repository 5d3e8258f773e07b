"""Celery tasks of the classroom: fulfil a pool request, publish an authored image, delete a retired
version's golden volume, and the class schedule's beat tick. Thin and idempotent, like compute's tasks
(whose power, reset and rebuild tasks the classroom's seats use through compute's services)."""

import logging

from celery import shared_task

from common.errors import ServiceError
from compute.classroom import services
from compute.classroom.models import AuthoringSession
from compute.classroom.services.authoring import system_volume
from compute.models import ImageVersion
from compute.tasks.runner import TASK_OPTIONS, run

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True)
def pool_fulfil(self, request_id: int):
    """An approved course-desktop request becomes a pool; a refusal fails the request with its reason."""
    from tenants.models import ApprovalRequest
    from tenants.services import request_fail

    request = ApprovalRequest.objects.select_related("course", "tenant", "requester").filter(pk=request_id).first()
    if request is None or request.state != ApprovalRequest.State.APPROVED:
        return "skipped"
    try:
        pool = services.pool_fulfil_again(request) or services.pool_create_from_request(request=request)
    except ServiceError as exc:
        request_fail(request=request, reason=exc.message)
        return "failed"
    return f"pool {pool.pk}"


@shared_task(**TASK_OPTIONS)
def authoring_publish(self, session_id: int, failures: int = 0):
    session = (
        AuthoringSession.objects.select_related("desktop__endpoint__site", "source_version")
        .filter(pk=session_id)
        .first()
    )
    if session is None or session.state != AuthoringSession.State.PUBLISHING:
        return "skipped"
    desktop, source = session.desktop, session.source_version
    pool = desktop.storage_pool or source.pool
    new_volume = f"cc-image-{source.image_id}-course{session.course_id}-{session.pk}.qcow2"
    overlay = system_volume(desktop)

    def flatten(driver):
        existing = {v.name: v for v in driver.volume_list(pool)}
        if new_volume in existing:  # redelivered after the copy was made
            return existing[new_volume]
        return driver.image_flatten(pool, overlay, new_volume)

    info, ok = run(
        self,
        endpoint=desktop.endpoint,
        holder=self.request.id or f"publish-{session_id}",
        fn=flatten,
        on_final_error=lambda exc: services.authoring_publish_finish(session_id=session_id, error=exc.message),
        failures=failures,
    )
    if ok:
        services.authoring_publish_finish(session_id=session_id, volume=info.name, size_bytes=info.capacity_bytes)
    return "done" if ok else "failed"


@shared_task(**TASK_OPTIONS)
def image_version_volume_delete(self, version_id: int, failures: int = 0):
    """Delete a retired version's golden volume, unless something still uses it after all: a
    desktop row (checked again here) or a volume in the pool whose backing file it is."""
    version = ImageVersion.objects.select_related("endpoint").filter(pk=version_id).first()
    if version is None or version.status != ImageVersion.Status.RETIRED or not (version.pool and version.volume):
        return "skipped"
    if services.version_in_use(version):
        services.version_volume_deleted(version_id=version_id, kept="in use by a desktop or pool")
        return "kept"

    def delete(driver):
        volumes = {v.name: v for v in driver.volume_list(version.pool)}
        golden = volumes.get(version.volume)
        if golden is None:
            return "gone"  # deleted already: a redelivered message
        children = sorted(v.name for v in volumes.values() if v.backing and v.backing == golden.path)
        if children:
            return f"backing file of {', '.join(children)[:400]}"
        driver.volume_delete(version.pool, version.volume)
        return "deleted"

    outcome, ok = run(
        self,
        endpoint=version.endpoint,
        holder=self.request.id or f"image-delete-{version_id}",
        fn=delete,
        on_final_error=lambda exc: services.version_volume_deleted(version_id=version_id, error=exc.message),
        failures=failures,
    )
    if not ok:
        return "failed"
    if outcome == "gone":
        return outcome
    services.version_volume_deleted(version_id=version_id, kept="" if outcome == "deleted" else outcome)
    return "deleted" if outcome == "deleted" else "kept"


@shared_task(bind=True, acks_late=True)
def schedule_tick(self):
    """The class schedule (portal.celery beat_schedule, every minute)."""
    return services.schedule_tick()

"""Celery task of golden images: import an uploaded file into its endpoint's storage pool."""

from celery import shared_task

from compute import services
from compute.models import ImageVersion
from compute.tasks.runner import TASK_OPTIONS, run


@shared_task(**TASK_OPTIONS)
def image_import(self, version_id: int, failures: int = 0):
    version = ImageVersion.objects.select_related("endpoint__site").filter(pk=version_id).first()
    if version is None or version.status != ImageVersion.Status.PENDING:
        return "skipped"
    _info, ok = run(
        self,
        endpoint=version.endpoint,
        holder=self.request.id or f"image-{version_id}",
        fn=lambda driver: driver.image_import(version.pool, version.volume, version.source_path),
        on_final_error=lambda exc: services.image_version_finish(version_id=version_id, error=exc.message),
        failures=failures,
    )
    if ok:
        services.image_version_finish(version_id=version_id)
    return "done" if ok else "failed"

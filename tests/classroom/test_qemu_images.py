"""Published course images on the real libvirtd + QEMU: a superseded version keeps its golden volume
while any desktop or pool uses it; once retired, the task deletes the volume from the pool."""

import pytest

from audit.models import AuditEvent
from compute import services as compute_services
from compute.classroom import services
from compute.classroom.models import AuthoringSession
from compute.classroom.tasks import image_version_volume_delete
from compute.models import Desktop, ImageVersion
from tests.classroom.conftest import make_course
from tests.harness.qemu import GOLDEN, POOL_DIR, pool_volumes

pytestmark = pytest.mark.libvirt


def _publish(scenario, course, version, flavor, capture) -> AuthoringSession:
    """A teacher's authoring desktop from ``version``, shut down and published as the next version."""
    with capture(execute=True):
        session = services.authoring_start(actor=scenario.teacher, course=course, image_version=version, flavor=flavor)
    session.desktop.refresh_from_db()
    assert session.desktop.state == Desktop.State.RUNNING, session.desktop.error_reason
    with capture(execute=True):
        compute_services.desktop_stop(actor=scenario.teacher, desktop=session.desktop)
    with capture(execute=True):
        services.authoring_publish(actor=scenario.teacher, session=session)
    session.refresh_from_db()
    assert session.state == AuthoringSession.State.PUBLISHED, session.last_error
    return session


def _seat_versions(pool) -> set[int]:
    return set(Desktop.objects.filter(seat__pool=pool).values_list("image_version_id", flat=True))


def test_a_retired_course_version_loses_its_golden_volume_and_one_in_use_keeps_it(
    scenario, qemu_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    course = make_course(scenario, students=2)
    with capture(execute=True):
        pool = services.pool_create(
            actor=scenario.teacher, course=course, image_version=qemu_env.version, flavor=qemu_env.flavor
        )
    v2 = _publish(scenario, course, qemu_env.version, qemu_env.flavor, capture).published_version
    with capture(execute=True):
        services.pool_reset(actor=scenario.teacher, pool=pool)
    assert _seat_versions(pool) == {v2.pk}

    second = _publish(scenario, course, v2, qemu_env.flavor, capture)
    v3 = second.published_version
    # v2 is superseded, but the seats and the second authoring desktop still run on it.
    assert services.versions_retire_unused() == 0
    with capture(execute=True):
        services.pool_reset(actor=scenario.teacher, pool=pool)
    assert _seat_versions(pool) == {v3.pk}
    assert services.versions_retire_unused() == 0  # the authoring desktop still does
    assert v2.volume in pool_volumes()

    with capture(execute=True):
        compute_services.desktop_delete(actor=scenario.teacher, desktop=second.desktop)
    with capture(execute=True):
        assert services.versions_retire_unused() == 1

    v2.refresh_from_db()
    assert v2.status == ImageVersion.Status.RETIRED
    volumes = pool_volumes()
    assert v2.volume not in volumes
    assert v3.volume in volumes and GOLDEN in volumes
    seats = [d.vm_name for d in Desktop.objects.filter(seat__pool=pool)]
    overlays = [backing for name, backing in volumes.items() if name.startswith(tuple(seats))]
    assert len(overlays) == 2 and set(overlays) == {str(POOL_DIR / v3.volume)}
    assert AuditEvent.objects.filter(action="image.version_retired", object_id=str(v2.pk)).exists()
    assert AuditEvent.objects.filter(
        action="image.volume_deleted", object_id=str(v2.pk), result="success", detail__step="image_volume_deleted"
    ).exists()
    # The platform's base image the teacher started from is not the course's to retire.
    qemu_env.version.refresh_from_db()
    assert qemu_env.version.status == ImageVersion.Status.READY

    # A retired version still in use is kept: by the database's word, and — should the rows say
    # otherwise — by the pool's own, where the seats' overlays still have it as their backing file.
    ImageVersion.objects.filter(pk=v3.pk).update(status=ImageVersion.Status.RETIRED)
    assert image_version_volume_delete.apply(args=[v3.pk]).get() == "kept"
    Desktop.objects.filter(image_version=v3).update(image_version=v2)
    type(pool).objects.filter(pk=pool.pk).update(image_version=v2)
    assert image_version_volume_delete.apply(args=[v3.pk]).get() == "kept"
    assert v3.volume in pool_volumes()
    kept = AuditEvent.objects.filter(detail__step="image_volume_kept").order_by("pk").last()
    assert "backing file of" in kept.reason

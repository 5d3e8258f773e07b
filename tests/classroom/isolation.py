"""Objects of tenant `cs` for tests/api/test_isolation.py: a user of `me` must get a 404 on each."""

from compute.classroom.models import DesktopPool, Seat


def _pool(scenario) -> DesktopPool:
    from tests.classroom.conftest import make_course
    from tests.compute.conftest import desktop_of

    course = make_course(scenario, students=1, code="ISO101")
    desktop = desktop_of(scenario.tenant_a, owner=scenario.student, course=course)
    from compute.models import Flavor, Image, ImageVersion

    image = Image.objects.create(name="iso image")
    version = ImageVersion.objects.create(
        image=image, version=1, endpoint=desktop.endpoint, pool="p", volume="v", status="ready"
    )
    flavor = Flavor.objects.create(name="iso-flavor", vcpus=1, memory_mib=128, disk_gib=1)
    pool = DesktopPool.objects.create(
        course=course, tenant=scenario.tenant_a, name="ISO101", image_version=version, flavor=flavor
    )
    Seat.objects.create(pool=pool, student=scenario.student, desktop=desktop)
    return pool


def _pool_id(scenario):
    return {"id": _pool(scenario).pk}


def _seat_ids(scenario):
    pool = _pool(scenario)
    return {"id": pool.pk, "seat_pk": pool.seats.get().pk}


def _desktop_id(scenario):
    from tests.compute.conftest import desktop_of

    return {"id": desktop_of(scenario.tenant_a, owner=scenario.student).pk}


MAKERS = {
    "/api/v1/pools/{id}/": _pool_id,
    "/api/v1/pools/{id}/seats/": _pool_id,
    "/api/v1/pools/{id}/start/": _pool_id,
    "/api/v1/pools/{id}/stop/": _pool_id,
    "/api/v1/pools/{id}/reset/": _pool_id,
    "/api/v1/pools/{id}/retry/": _pool_id,
    "/api/v1/pools/{id}/skip/": _pool_id,
    "/api/v1/pools/{id}/sync-roster/": _pool_id,
    "/api/v1/pools/{id}/seats/{seat_pk}/assign/": _seat_ids,
    "/api/v1/pools/{id}/seats/{seat_pk}/take-back/": _seat_ids,
    "/api/v1/desktops/{id}/console/": _desktop_id,
}

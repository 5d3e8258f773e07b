"""End to end through compute's services on libvirt's test driver: every billable state change is metered,
in the transaction that made it, through the hook billing registers (compute.hooks)."""

import pytest

from billing.models import MeterCursor, UsageInterval
from compute import services
from compute.models import Desktop
from tests.compute.conftest import make_env


@pytest.fixture
def eager():
    from portal.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture
def env(scenario):
    from compute.hypervisor import drivers_close_all

    drivers_close_all()
    yield make_env(scenario)
    drivers_close_all()


def held(desktop) -> tuple:
    cursor = MeterCursor.objects.get(pk=desktop.pk)
    return cursor.running, cursor.vcpus, cursor.ram_mib, cursor.disk_gib


@pytest.mark.django_db
def test_create_start_stop_delete_through_compute_are_metered_once_each(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        desktop = services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=env.version, flavor=env.flavor
        )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING
    assert held(desktop) == (True, 1, 128, 1)
    first = UsageInterval.objects.filter(desktop=desktop).order_by("start").first()
    assert first is not None and (first.running, first.disk_gib) == (False, 1)  # provisioning: the disk only

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_stop(actor=scenario.student, desktop=desktop)
    assert held(desktop) == (False, 0, 0, 1)

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_start(actor=scenario.student, desktop=desktop)
    assert held(desktop) == (True, 1, 128, 1)

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_delete(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.DELETED
    assert held(desktop) == (False, 0, 0, 0)

    pieces = list(UsageInterval.objects.filter(desktop=desktop).order_by("start"))
    # One contiguous chain from creation to deletion: nothing lost, nothing counted twice.
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert pieces[-1].end == MeterCursor.objects.get(pk=desktop.pk).since
    assert {p.user_id for p in pieces} == {scenario.student.pk}
    assert any(p.running and p.vcpus == 1 for p in pieces)

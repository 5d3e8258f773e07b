"""End to end through compute's services on libvirt's test driver: every billable state change is metered,
in the transaction that made it, through the hook billing registers (compute.hooks)."""

import time
from datetime import date

import pytest
from django.utils import timezone

from billing import services as billing
from billing.errors import BillingError
from billing.models import MeterCursor, UsageInterval
from common.errors import Conflict
from compute import services
from compute.models import Desktop
from tests.billing.conftest import plan
from tests.compute.conftest import make_env


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

    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_delete(actor=scenario.student, desktop=desktop)
    after = timezone.now()
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.DELETED
    assert not MeterCursor.objects.filter(pk=desktop.pk).exists()  # nothing held: no open interval

    pieces = list(UsageInterval.objects.filter(desktop=desktop).order_by("start"))
    # One contiguous chain from creation to deletion: nothing lost, nothing counted twice.
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert before <= pieces[-1].end <= after  # the last interval closed when the deletion finished
    assert {p.user_id for p in pieces} == {scenario.student.pk}
    assert any(p.running and p.vcpus == 1 for p in pieces)


@pytest.mark.django_db
def test_compute_refuses_a_new_desktop_past_a_blocking_budget(scenario, env, eager, django_capture_on_commit_callbacks):
    plan(scenario.sysadmin, scenario.university, date(2020, 1, 1), disk="1000")
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=env.version, flavor=env.flavor
        )
    billing.budget_set(actor=scenario.finance, tenant=scenario.tenant_a, amount="0.01", block_new_desktops=True)
    time.sleep(0.05)  # 1 GiB at 1000 yuan per GiB-hour: a few milliseconds exceed one fen

    with pytest.raises(Conflict) as err:
        services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=env.version, flavor=env.flavor
        )
    assert err.value.code == BillingError.BUDGET_EXHAUSTED
    assert Desktop.objects.filter(tenant=scenario.tenant_a).count() == 1

"""Issue #13.11 (compute's part): a desktop can be made stopped, so a course desktop made outside class
waits for the schedule; and the schedule says when a pool's desktops are meant to be on."""

import pytest

from compute import services
from compute.classroom.models import DesktopPool
from compute.classroom.services.schedule import desktops_on_now
from compute.hypervisor import driver_for
from compute.models import Desktop
from tests.classroom.conftest import MONDAY, at, make_course


def test_a_desktop_made_with_start_false_is_provisioned_stopped(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        desktop = services.desktop_create(
            actor=scenario.student,
            tenant=scenario.tenant_a,
            image_version=compute_env.version,
            flavor=compute_env.flavor,
            start=False,
        )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.STOPPED, desktop.last_error
    assert driver_for(compute_env.endpoint).get_vm(desktop.vm_name).power_state == "stopped"


@pytest.mark.parametrize(
    ("hour", "minute", "on"),
    [
        (9, 40, False),  # 20 minutes before the 10:00 class: the 15-minute lead has not begun
        (9, 46, True),  # within the lead
        (11, 45, True),  # class over at 11:40, the 10-minute shutdown delay running
        (11, 51, False),  # after it
    ],
)
def test_the_schedule_says_when_a_pools_desktops_are_on(scenario, compute_env, hour, minute, on):
    course = make_course(scenario)  # Mondays 10:00-11:40
    pool = DesktopPool.objects.create(
        course=course,
        tenant=course.tenant,
        name="CS101",
        image_version=compute_env.version,
        flavor=compute_env.flavor,
        lead_minutes=15,
        shutdown_after_minutes=10,
    )
    assert desktops_on_now(pool, at(MONDAY, hour, minute)) is on

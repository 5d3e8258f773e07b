"""A student's desktop from the UI, in a real Chromium, on the real libvirtd with a real Celery worker.

Acceptance of issue 4: created from the UI within quota, reaches running with a VNC port
(live state through htmx polling), survives stop/start and snapshot/revert, and is deleted
(after a confirmation) with its volumes gone from the pool.
"""

import re
from pathlib import Path

import pytest

from compute.models import Desktop, Snapshot
from tests import factories
from tests.harness.qemu import qemu_volumes
from tests.harness.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.libvirt, pytest.mark.worker]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _state(page, state: str, timeout: int = 90_000):  # noqa: F811 - a Playwright page, not the fixture
    page.locator(f'[data-testid="desktop-state"][data-state="{state}"]').wait_for(timeout=timeout)


def test_a_student_runs_a_desktop_from_the_ui_through_its_whole_life(
    scenario,
    qemu_env,
    celery_worker,
    live_server,
    page,
    login,
):
    login("a_student", factories.PASSWORD)

    page.goto("/compute/")
    page.get_by_test_id("desktop-empty").wait_for()
    page.get_by_test_id("desktop-new").click()
    page.get_by_label("名称").fill("my-lab")
    page.get_by_label("镜像").select_option(str(qemu_env.version.pk))
    page.get_by_label("规格").select_option(str(qemu_env.flavor.pk))
    page.get_by_role("button", name="创建").click()

    page.wait_for_url(re.compile(r"/compute/desktops/\d+/$"))
    _state(page, "running")  # the badge polls itself until the worker is done
    desktop = Desktop.objects.get(name="my-lab")
    assert desktop.owner == scenario.student and desktop.vnc_port
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compute-desktop-running.png"), full_page=True)

    # Each action reloads the page into a polling state badge; when the worker is done the
    # page refreshes itself (HX-Refresh) with the actions of the new state.
    page.get_by_test_id("action-stop").click()
    _state(page, "stopped")
    page.get_by_test_id("action-start").click()
    _state(page, "running")

    page.get_by_label("快照名称").fill("clean")
    page.get_by_role("button", name="创建快照").click()
    wait_for(lambda: Snapshot.objects.filter(desktop=desktop, state="ready").exists(), what="snapshot ready")
    _state(page, "running")
    page.get_by_role("button", name="恢复").click()
    page.get_by_test_id("confirm-ok").click()  # the page's own dialog, once
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).state in ("running", "stopped"), what="revert done")
    page.locator(
        '[data-testid="desktop-state"][data-state="running"], [data-testid="desktop-state"][data-state="stopped"]'
    ).first.wait_for()
    assert Snapshot.objects.get(desktop=desktop).state == "ready"

    page.get_by_test_id("action-delete").click()
    page.get_by_test_id("confirm-delete").click()  # nothing is deleted before this confirmation
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).state == "deleted", timeout=90, what="deleted")
    assert not {v for v in qemu_volumes() if v.startswith(desktop.vm_name)}

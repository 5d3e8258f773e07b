"""student1 opens the console of their own course desktop in Chromium and sees noVNC connected.

The live_server of the harness is a WSGI server and cannot carry WebSockets, so the portal
runs here under uvicorn (ASGI) on a free loopback port against the test database, and the
page is pointed there. The desktop is a real QEMU domain on the real libvirtd.
"""

from types import SimpleNamespace

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from compute import services as compute_services
from compute.models import Cluster, Desktop
from tenants.models import Course, User
from tests.harness.browser import ARTIFACTS
from tests.harness.qemu import qemu_cleanup

pytestmark = [pytest.mark.browser, pytest.mark.libvirt, pytest.mark.worker]


@pytest.fixture
def student1_desktop(demo_data, qemu_pool):
    from portal.celery import app
    from tests.compute.conftest import make_env

    qemu_cleanup(networks=True)
    env = make_env(
        SimpleNamespace(sysadmin=User.objects.get(username="sysadmin")),
        url=qemu_pool["uri"],
        pool=qemu_pool["pool"],
        volume=qemu_pool["volume"],
        size_bytes=qemu_pool["size"],
        name="qemu-browser",
    )
    Cluster.objects.filter(pk=env.endpoint.cluster_id).update(cpu_overcommit=16)
    app.conf.task_always_eager = True
    try:
        desktop = compute_services.desktop_create(
            actor=User.objects.get(username="teacher1"),
            tenant=Course.objects.get(code="CS101").tenant,
            image_version=env.version,
            flavor=env.flavor,
            owner=User.objects.get(username="student1"),
            course=Course.objects.get(code="CS101"),
            endpoint=env.endpoint,
        )
    finally:
        app.conf.task_always_eager = False
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
    # The uvicorn process has the default password hashers, not the tests' fast MD5 one.
    User.objects.filter(username="student1").update(
        password=PBKDF2PasswordHasher().encode(demo_data, "classroomsalt", iterations=1000)
    )
    yield desktop
    qemu_cleanup(networks=True)


def test_student1_opens_the_console_of_their_desktop_and_novnc_connects(
    page,
    demo_data,
    student1_desktop,
    asgi_server,
):
    base = asgi_server
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("用户名").fill("student1")
    page.get_by_label("密码").fill(demo_data)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state("networkidle")

    page.goto(f"{base}/classroom/")
    # student1 may also have running seats of the demo pool (on test:///default, no console):
    # open the QEMU desktop's.
    console = f"/classroom/desktops/{student1_desktop.pk}/console/"
    page.get_by_role("link", name="打开控制台").and_(page.locator(f'[href="{console}"]')).click()
    status = page.get_by_test_id("console-status")
    status.filter(has_text="已连接").wait_for(timeout=20_000)
    page.wait_for_timeout(1500)  # let the first frame paint before the screenshot
    assert page.locator("#screen canvas").count() == 1
    assert page.get_by_role("button", name="Ctrl+Alt+Del").is_enabled()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-student1.png"), full_page=True)

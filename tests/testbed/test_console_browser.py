"""student1 opens, in Chromium, the console of a desktop that runs on a remote testbed host (h3, site
west) and sees noVNC connected: the portal's proxy reached QEMU on h3's management address and
authenticated with the ticket's one-time VNC password (tests/testbed/test_hosts.py checks the parts)."""

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from compute.models import Desktop, Host
from tenants.models import Course, User
from tests.harness.browser import ARTIFACTS
from tests.testbed.test_hosts import add_host

pytestmark = [pytest.mark.browser, pytest.mark.libvirt, pytest.mark.worker, pytest.mark.testbed]


def test_student1_opens_the_console_of_a_desktop_on_a_remote_host_and_novnc_connects(
    page, demo_data, remote_domain, asgi_server
):
    host, vm_name, _port = remote_domain
    add_host(host)
    course = Course.objects.get(code="CS101")
    student1 = User.objects.get(username="student1")
    desktop = Desktop.objects.create(
        name="remote-lab",
        vm_name=vm_name,
        tenant=course.tenant,
        owner=student1,
        course=course,
        endpoint=Host.objects.get(name=host.name).endpoint,
        host=Host.objects.get(name=host.name),
        state=Desktop.State.RUNNING,
        power_state="running",
    )
    # The uvicorn process has the default password hashers, not the tests' fast MD5 one.
    User.objects.filter(pk=student1.pk).update(
        password=PBKDF2PasswordHasher().encode(demo_data, "testbedsalt", iterations=1000)
    )
    base = asgi_server
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("用户名").fill("student1")
    page.get_by_label("密码").fill(demo_data)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state("networkidle")

    page.goto(f"{base}/classroom/desktops/{desktop.pk}/console/")
    status = page.get_by_test_id("console-status")
    status.filter(has_text="已连接").wait_for(timeout=20_000)
    page.wait_for_timeout(1500)  # let the first frame paint before the screenshot
    assert page.locator("#screen canvas").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-remote-host.png"), full_page=True)

"""Images that boot a kernel directly (kernel, initrd, command line on the host): checked when made,
shown on the image page, the API and the admin, and carried into the desktop's domain."""

import xml.etree.ElementTree as ET

import libvirt
import pytest
from django.test import Client

from common.errors import InvalidInput
from compute import services
from compute.drivers.base import BootSpec
from compute.errors import ComputeError
from compute.hypervisor import vm_spec
from compute.models import Desktop, Endpoint, Image, ImageVersion
from tests import factories
from tests.compute.conftest import desktop_of

KERNEL, INITRD = "/var/lib/cc-shared/guest/vmlinuz", "/var/lib/cc-shared/guest/initrd.gz"


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.SECOND_FACTOR_REQUIRED = False


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("boot", "code"),
    [
        ({"kernel_path": "vmlinuz"}, ComputeError.IMAGE_BOOT_PATH_INVALID),
        ({"kernel_path": "/boot/../etc/shadow"}, ComputeError.IMAGE_BOOT_PATH_INVALID),
        ({"kernel_path": KERNEL, "initrd_path": "initrd.gz"}, ComputeError.IMAGE_BOOT_PATH_INVALID),
        ({"initrd_path": INITRD}, ComputeError.IMAGE_BOOT_KERNEL_MISSING),
        ({"kernel_cmdline": "console=ttyS0"}, ComputeError.IMAGE_BOOT_KERNEL_MISSING),
        ({"kernel_path": KERNEL, "kernel_cmdline": "a\nb"}, ComputeError.IMAGE_BOOT_CMDLINE_INVALID),
    ],
)
def test_bad_boot_properties_are_refused_with_their_code(scenario, boot, code):
    with pytest.raises(InvalidInput) as caught:
        services.image_create(actor=scenario.sysadmin, name="k", **boot)
    assert caught.value.code == code


def test_a_relative_kernel_path_is_a_clear_error_on_the_image_page(scenario):
    response = _client(scenario.sysadmin).post(
        "/compute/admin/images/", {"name": "Tiny", "visibility": "platform", "kernel_path": "boot/vmlinuz"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "不是主机上的绝对路径" in page
    assert "内核路径" in page and "内核命令行" in page  # the form's Chinese labels


def test_an_image_made_on_the_page_keeps_its_boot_properties_and_shows_them(scenario):
    client = _client(scenario.sysadmin)
    data = {"name": "Tiny", "visibility": "platform", "kernel_path": KERNEL, "initrd_path": INITRD}
    response = client.post("/compute/admin/images/", {**data, "kernel_cmdline": "console=ttyS0 quiet"})
    assert response.status_code == 302
    page = client.get("/compute/admin/images/").content.decode()
    assert 'data-testid="image-boot"' in page and KERNEL in page and "console=ttyS0 quiet" in page


def test_the_api_creates_and_shows_a_kernel_booted_image(scenario, api):
    client = api.as_user(scenario.sysadmin)
    created = client.post(
        "/api/v1/images/", {"name": "Tiny", "kernel_path": KERNEL, "kernel_cmdline": "console=ttyS0"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert (created.json()["kernel_path"], created.json()["kernel_cmdline"]) == (KERNEL, "console=ttyS0")
    refused = client.post("/api/v1/images/", {"name": "Bad", "kernel_path": "vmlinuz"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == ComputeError.IMAGE_BOOT_PATH_INVALID


def test_the_admin_shows_the_boot_properties_and_refuses_an_initrd_without_kernel(db):
    client = _client(factories.UserFactory(username="recovery", is_staff=True, is_superuser=True))
    page = client.get("/admin/compute/image/add/").content.decode()
    assert "直接内核启动" in page and "内核路径" in page
    response = client.post(
        "/admin/compute/image/add/",
        {
            "name": "Tiny",
            "visibility": "platform",
            "is_active": "on",
            "initrd_path": INITRD,
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "也要填写内核路径" in response.content.decode()


def test_a_desktop_of_a_kernel_booted_image_gets_the_kernel_in_its_domain(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    image = services.image_create(
        actor=scenario.sysadmin, name="Tiny", kernel_path=KERNEL, initrd_path=INITRD, kernel_cmdline="console=ttyS0"
    )
    version = services.image_version_register(
        actor=scenario.sysadmin,
        image=image,
        endpoint=compute_env.endpoint,
        pool="default-pool",
        volume="cc-golden.qcow2",
        size_bytes=1024**3,
    )
    with django_capture_on_commit_callbacks(execute=True):
        desktop = services.desktop_create(
            actor=scenario.sysadmin,
            tenant=scenario.tenant_a,
            image_version=version,
            flavor=compute_env.flavor,
            owner=scenario.student,
            name="tiny",
        )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
    conn = libvirt.open("test:///default")
    try:
        root = ET.fromstring(conn.lookupByName(desktop.vm_name).XMLDesc(0))
    finally:
        conn.close()
    assert (root.findtext("os/kernel"), root.findtext("os/initrd")) == (KERNEL, INITRD)
    assert root.findtext("os/cmdline") == "console=ttyS0"


def test_a_disk_image_gives_no_boot_spec(scenario, compute_env):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    assert vm_spec(desktop).boot is None
    assert ImageVersion.objects.get(pk=compute_env.version.pk).image.kernel_path == ""


def test_only_libvirt_desktops_boot_the_kernel(scenario, compute_env):
    Image.objects.filter(pk=compute_env.image.pk).update(kernel_path=KERNEL, kernel_cmdline="console=ttyS0")
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    assert vm_spec(Desktop.objects.get(pk=desktop.pk)).boot == BootSpec(kernel=KERNEL, cmdline="console=ttyS0")
    Endpoint.objects.filter(pk=compute_env.endpoint.pk).update(kind=Endpoint.Kind.VCENTER)
    assert vm_spec(Desktop.objects.get(pk=desktop.pk)).boot is None  # a vCenter template boots itself

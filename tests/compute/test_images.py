"""Golden images: an uploaded file is checked with qemu-img and imported into the real libvirtd's pool."""

import subprocess

import pytest

from common.errors import InvalidInput
from compute import services
from compute.errors import ComputeError
from compute.models import ImageVersion
from tests.harness.qemu import qemu_volumes

pytestmark = pytest.mark.libvirt


@pytest.fixture
def qemu_endpoint(scenario, qemu_pool):
    return services.endpoint_register(
        actor=scenario.sysadmin, name="qemu-img", kind="libvirt", url=qemu_pool["uri"], storage_pool=qemu_pool["pool"]
    )


def test_an_uploaded_qcow2_becomes_a_ready_golden_volume(
    scenario, qemu_endpoint, tmp_path, eager, django_capture_on_commit_callbacks
):
    source = tmp_path / "lab.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(source), "32M"], check=True)
    image = services.image_create(actor=scenario.sysadmin, name="Lab")

    with django_capture_on_commit_callbacks(execute=True):
        version = services.image_upload(actor=scenario.sysadmin, image=image, endpoint=qemu_endpoint, path=str(source))
    version.refresh_from_db()

    assert version.status == ImageVersion.Status.READY, version.last_error
    assert version.format == "qcow2" and version.size_bytes == 32 * 1024 * 1024
    assert version.volume in qemu_volumes()
    assert not source.exists()  # the upload is removed once imported


def test_a_qcow2_with_a_backing_file_is_refused(scenario, qemu_endpoint, tmp_path):
    base = tmp_path / "base.qcow2"
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(overlay)], check=True
    )
    image = services.image_create(actor=scenario.sysadmin, name="Overlay")

    with pytest.raises(InvalidInput) as excinfo:
        services.image_upload(actor=scenario.sysadmin, image=image, endpoint=qemu_endpoint, path=str(overlay))

    assert excinfo.value.code == ComputeError.IMAGE_HAS_BACKING_FILE
    assert not ImageVersion.objects.filter(image=image).exists()

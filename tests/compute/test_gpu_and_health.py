"""GPU placement (a GPU profile goes to a GPU cluster and gets a device of its own) and /healthz per endpoint."""

import pytest

from common.errors import InvalidInput
from compute import services
from compute.drivers.base import GpuSpec
from compute.errors import ComputeError
from compute.health import hypervisor_health
from compute.hypervisor import vm_spec
from compute.models import Cluster, Endpoint, Flavor, GpuProfile, Host


@pytest.fixture
def gpu_env(scenario, compute_env):
    endpoint = services.endpoint_register(
        actor=scenario.sysadmin,
        name="gpu-node",
        kind="libvirt",
        url="test:///default",
        cluster_kind=Cluster.Kind.GPU,
        storage_pool="default-pool",
    )
    Host.objects.filter(endpoint=endpoint).update(gpu_devices=["0000:3b:00.0", "0000:3c:00.0"])
    version = services.image_version_register(
        actor=scenario.sysadmin, image=compute_env.image, endpoint=endpoint, pool="default-pool", volume="gpu.qcow2"
    )
    profile = GpuProfile.objects.create(name="A100 直通", mode=GpuProfile.Mode.PASSTHROUGH, gpus=1)
    flavor = Flavor.objects.create(name="gpu.small", vcpus=1, memory_mib=128, disk_gib=1, gpu_profile=profile)
    return endpoint, version, flavor


def test_each_gpu_desktop_gets_its_own_device_on_the_gpu_cluster(scenario, gpu_env):
    endpoint, version, flavor = gpu_env

    def create():
        return services.desktop_create(
            actor=scenario.tenant_admin,
            tenant=scenario.tenant_a,
            image_version=version,
            flavor=flavor,
            owner=scenario.student,
        )

    first, second = create(), create()

    assert first.endpoint == endpoint and first.gpus == 1
    assert {first.gpu_device, second.gpu_device} == {"0000:3b:00.0", "0000:3c:00.0"}
    assert vm_spec(first).gpu == GpuSpec(mode="passthrough", pci_addresses=(first.gpu_device,))
    with pytest.raises(InvalidInput) as excinfo:
        create()
    assert excinfo.value.code == ComputeError.NO_CAPACITY


def test_a_vgpu_profile_becomes_a_mediated_device_spec(scenario, gpu_env):
    endpoint, version, flavor = gpu_env
    GpuProfile.objects.filter(pk=flavor.gpu_profile_id).update(mode=GpuProfile.Mode.VGPU, vgpu_type="nvidia-63")
    Host.objects.filter(endpoint=endpoint).update(gpu_devices=["4b20d080-1b54-4048-85b3-a6a62d165c01"])
    flavor.refresh_from_db()

    desktop = services.desktop_create(
        actor=scenario.student, tenant=scenario.tenant_a, image_version=version, flavor=flavor
    )

    assert vm_spec(desktop).gpu == GpuSpec(
        mode="vgpu", mdev_uuid="4b20d080-1b54-4048-85b3-a6a62d165c01", mdev_type="nvidia-63"
    )


def test_health_reports_every_registered_endpoint(scenario, compute_env):
    site, cluster = compute_env.endpoint.site, compute_env.endpoint.cluster
    Endpoint.objects.create(
        name="dead", site=site, cluster=cluster, kind="libvirt", url="qemu+tcp://127.0.0.1:1/system"
    )
    Endpoint.objects.create(
        name="retired", site=site, cluster=cluster, kind="libvirt", url="qemu+tcp://127.0.0.1:1/x", is_active=False
    )

    report = hypervisor_health()

    assert report["testdrv"] == "ok"
    assert report["dead"].startswith("error")
    assert "retired" not in report and "default" not in report

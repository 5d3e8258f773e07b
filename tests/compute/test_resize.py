"""Resizing a stopped desktop to another flavor: quota growth, the driver call, metering, refusals."""

import pytest

from audit.models import AuditEvent
from common.errors import InvalidInput, InvalidTransition
from compute import hooks, services
from compute.drivers import xml as lx
from compute.drivers.base import GpuSpec
from compute.errors import ComputeError
from compute.hypervisor import driver_for
from compute.models import Cluster, Desktop, Flavor, GpuProfile
from tenants.models import Quota
from tenants.quotas import QuotaExceeded
from tenants.services import quota_set


@pytest.fixture
def observed():
    """The reasons compute reports to its desktop observers (billing meters through the same hook)."""
    seen = []

    def observer(*, desktop, at, reason):
        seen.append((desktop.pk, reason, desktop.vcpus, desktop.memory_mib))

    hooks.register_desktop_observer(observer)
    yield seen
    hooks.unregister_desktop_observer(observer)


def _stopped_desktop(env, scenario, capture) -> Desktop:
    with capture(execute=True):
        desktop = services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=env.version, flavor=env.flavor
        )
    with capture(execute=True):
        services.desktop_stop(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.STOPPED
    return desktop


def _medium() -> Flavor:
    return Flavor.objects.create(name="medium", vcpus=2, memory_mib=2048, disk_gib=1)


def _tenant_quota(scenario) -> Quota:
    return Quota.objects.get(scope="tenant", tenant=scenario.tenant_a)


def test_a_stopped_desktop_gets_the_new_flavor_on_the_vm_in_its_quota_and_in_metering(
    scenario, compute_env, eager, django_capture_on_commit_callbacks, observed
):
    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"vcpu": 4, "ram_mib": 4096})
    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    medium = _medium()

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=medium)
    desktop.refresh_from_db()

    assert desktop.state == Desktop.State.STOPPED
    assert (desktop.flavor, desktop.vcpus, desktop.memory_mib) == (medium, 2, 2048)
    vm = driver_for(compute_env.endpoint).get_vm(desktop.vm_name)
    assert (vm.vcpus, vm.memory_mib, vm.power_state) == (2, 2048, "stopped")
    quota = _tenant_quota(scenario)
    assert (quota.used_vcpu, quota.used_ram_mib, quota.used_desktops) == (2, 2048, 1)
    assert (quota.reserved_vcpu, quota.reserved_ram_mib) == (0, 0)
    assert (desktop.pk, "resized", 2, 2048) in observed
    (event,) = [e for e in AuditEvent.objects.filter(action="desktop.resized") if e.detail.get("desktop") == desktop.pk]
    assert event.detail["to"]["vcpus"] == 2 and event.detail["from"]["vcpus"] == 1


def test_only_the_growth_is_checked_against_the_quota(scenario, compute_env, eager, django_capture_on_commit_callbacks):
    # 2 vCPUs allowed, 1 used by the desktop itself: growing it to 2 fits, to 3 does not.
    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"vcpu": 2})
    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    large = Flavor.objects.create(name="large", vcpus=3, memory_mib=128, disk_gib=1)

    with pytest.raises(QuotaExceeded):
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=large)
    desktop.refresh_from_db()
    assert (desktop.state, desktop.vcpus, desktop.task_id) == (Desktop.State.STOPPED, 1, desktop.task_id)
    assert _tenant_quota(scenario).reserved_vcpu == 0

    two = Flavor.objects.create(name="two", vcpus=2, memory_mib=128, disk_gib=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=two)
    desktop.refresh_from_db()
    assert desktop.vcpus == 2
    assert _tenant_quota(scenario).used_vcpu == 2


def test_shrinking_gives_quota_back(scenario, compute_env, eager, django_capture_on_commit_callbacks):
    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"vcpu": 8})
    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    medium = _medium()
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=medium)
    desktop.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=compute_env.flavor)
    desktop.refresh_from_db()

    assert desktop.vcpus == 1
    assert driver_for(compute_env.endpoint).get_vm(desktop.vm_name).vcpus == 1
    assert _tenant_quota(scenario).used_vcpu == 1

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_delete(actor=scenario.student, desktop=desktop)
    assert _tenant_quota(scenario).used_vcpu == 0


def test_a_quota_lowered_during_the_resize_still_charges_at_least_the_new_size(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    from compute import quota

    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"vcpu": 8})
    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    medium = _medium()
    hold = quota.resize_quota_hold(actor=scenario.student, desktop=desktop, vcpus=2, memory_mib=2048, gpus=0)
    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"vcpu": 0})
    desktop.resized(flavor=medium, gpu_device="")

    ids = quota.resize_quota_settle(desktop=desktop, hold=hold)

    assert ids.count(",") == 1  # the old share and the growth, both kept
    assert _tenant_quota(scenario).used_vcpu == 2
    quota.desktop_quota_release(reservation_id=ids)
    assert _tenant_quota(scenario).used_vcpu == 0


def test_a_running_desktop_cannot_be_resized(scenario, compute_env, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        desktop = services.desktop_create(
            actor=scenario.student,
            tenant=scenario.tenant_a,
            image_version=compute_env.version,
            flavor=compute_env.flavor,
        )
    desktop.refresh_from_db()

    with pytest.raises(InvalidTransition) as excinfo:
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=_medium())
    assert excinfo.value.code == ComputeError.DESKTOP_INVALID_TRANSITION


def test_the_same_flavor_and_a_gpu_flavor_off_a_gpu_cluster_are_refused(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    with pytest.raises(InvalidInput) as same:
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=compute_env.flavor)
    profile = GpuProfile.objects.create(name="a100", mode="passthrough")
    gpu = Flavor.objects.create(name="gpu", vcpus=1, memory_mib=128, disk_gib=1, gpu_profile=profile)
    with pytest.raises(InvalidInput) as off_cluster:
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=gpu)

    assert same.value.code == ComputeError.DESKTOP_SAME_FLAVOR
    assert off_cluster.value.code == ComputeError.FLAVOR_NEEDS_GPU_CLUSTER
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.STOPPED


def test_a_gpu_flavor_on_a_gpu_host_takes_a_free_device_and_gives_it_back(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    other = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    Cluster.objects.filter(pk=compute_env.endpoint.cluster_id).update(kind=Cluster.Kind.GPU)
    host = compute_env.endpoint.hosts.get()
    host.gpu_devices = ["0000:3b:00.0", "0000:5e:00.0"]
    host.save()
    Desktop.objects.filter(pk=other.pk).update(gpu_device="0000:3b:00.0", gpus=1)
    profile = GpuProfile.objects.create(name="a100", mode="passthrough")
    gpu = Flavor.objects.create(name="gpu", vcpus=1, memory_mib=128, disk_gib=1, gpu_profile=profile)

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=gpu)
    desktop.refresh_from_db()
    assert (desktop.gpus, desktop.gpu_device, desktop.state) == (1, "0000:5e:00.0", Desktop.State.STOPPED)
    assert driver_for(compute_env.endpoint).get_vm(desktop.vm_name).gpu == GpuSpec(
        mode="passthrough", pci_addresses=("0000:5e:00.0",)
    )

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_resize(actor=scenario.student, desktop=desktop, flavor=compute_env.flavor)
    desktop.refresh_from_db()
    assert (desktop.gpus, desktop.gpu_device) == (0, "")
    assert driver_for(compute_env.endpoint).get_vm(desktop.vm_name).gpu is None


def test_set_shape_replaces_gpu_devices_and_keeps_the_rest():
    root = lx.parse(
        "<domain type='qemu'><name>x</name><memory unit='KiB'>131072</memory>"
        "<currentMemory unit='KiB'>131072</currentMemory><vcpu placement='static'>1</vcpu><devices>"
        "<disk type='volume' device='disk'><source pool='p' volume='v'/><target dev='vda'/></disk>"
        "<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x3b' slot='0x00' "
        "function='0x0'/></source></hostdev></devices></domain>"
    )

    lx.set_shape(
        root, vcpus=4, memory_mib=4096, gpu=GpuSpec(mode="vgpu", mdev_uuid="4b20d080-1b54-4048-85b3-a6a62d165c01")
    )

    assert root.findtext("vcpu") == "4"
    assert (root.find("memory").text, root.find("memory").get("unit")) == ("4096", "MiB")
    assert root.find("currentMemory").text == "4096"
    assert [h.get("type") for h in root.findall("devices/hostdev")] == ["mdev"]
    assert root.find("devices/disk/source").get("volume") == "v"
    with pytest.raises(Exception) as excinfo:
        lx.set_shape(root, vcpus=0, memory_mib=4096, gpu=None)
    assert getattr(excinfo.value, "code", "") == "invalid_spec"


def test_the_resize_api_answers_202_400_and_404(scenario, compute_env, api, eager, django_capture_on_commit_callbacks):
    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    medium = _medium()
    url = f"/api/v1/desktops/{desktop.pk}/resize/"

    assert api.as_user(scenario.stranger).post(url, {"flavor": medium.pk}, format="json").status_code == 404
    bad = api.as_user(scenario.student).post(url, {"flavor": 999999}, format="json")
    assert bad.status_code == 400 and "flavor" in bad.json()["detail"]
    assert api.as_user(scenario.student).post(url, {}, format="json").status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(scenario.student).post(url, {"flavor": medium.pk}, format="json")
    assert response.status_code == 202, response.content
    desktop.refresh_from_db()
    assert desktop.vcpus == 2


def test_the_detail_page_offers_resize_only_when_stopped_and_applies_it(
    scenario, compute_env, eager, django_capture_on_commit_callbacks, settings
):
    from django.test import Client

    desktop = _stopped_desktop(compute_env, scenario, django_capture_on_commit_callbacks)
    medium = _medium()
    client = Client()
    client.force_login(scenario.student)

    page = client.get(f"/compute/desktops/{desktop.pk}/").content.decode()
    assert 'data-testid="action-resize"' in page and "medium" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/compute/desktops/{desktop.pk}/resize/", {"flavor": medium.pk})
    assert response.status_code == 302
    desktop.refresh_from_db()
    assert desktop.vcpus == 2
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_start(actor=scenario.student, desktop=desktop)
    assert 'data-testid="action-resize"' not in client.get(f"/compute/desktops/{desktop.pk}/").content.decode()

"""Compute services on libvirt's test driver, tasks run in-process (the layer above the driver)."""

import pytest

from audit.models import AuditEvent
from common.errors import Forbidden, InvalidInput, InvalidTransition
from compute import services
from compute.errors import ComputeError
from compute.hypervisor import driver_for
from compute.models import Desktop, Endpoint, Flavor, Snapshot
from tests import factories


def _create(env, user, tenant, capture, **kwargs):
    with capture(execute=True):
        desktop = services.desktop_create(
            actor=user, tenant=tenant, image_version=env.version, flavor=env.flavor, **kwargs
        )
    desktop.refresh_from_db()
    return desktop


def test_a_student_desktop_is_provisioned_running_on_the_test_driver(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    desktop = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)

    assert desktop.state == Desktop.State.RUNNING
    assert desktop.power_state == Desktop.Power.RUNNING
    assert desktop.owner == scenario.student
    assert desktop.task_id
    vm = driver_for(compute_env.endpoint).get_vm(desktop.vm_name)
    assert vm.power_state == "running"
    assert vm.vcpus == 1 and vm.memory_mib == 128
    actions = set(AuditEvent.objects.filter(object_id=str(desktop.pk)).values_list("action", flat=True))
    assert {"desktop.created", "desktop.provisioned"} <= actions


def test_stop_start_reboot_follow_the_state_machine(scenario, compute_env, eager, django_capture_on_commit_callbacks):
    desktop = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_stop(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.STOPPED
    assert driver_for(compute_env.endpoint).get_vm(desktop.vm_name).power_state == "stopped"

    with pytest.raises(InvalidTransition) as excinfo:
        services.desktop_stop(actor=scenario.student, desktop=desktop)
    assert excinfo.value.code == ComputeError.DESKTOP_INVALID_TRANSITION
    assert excinfo.value.status == 409

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_start(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_reboot(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING


def test_snapshot_create_revert_delete_on_the_test_driver(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    desktop = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        snapshot = services.snapshot_create(actor=scenario.student, desktop=desktop, name="before-lab")
    snapshot.refresh_from_db()
    assert snapshot.state == Snapshot.State.READY
    assert [s.name for s in driver_for(compute_env.endpoint).snapshot_list(desktop.vm_name)] == ["before-lab"]

    with django_capture_on_commit_callbacks(execute=True):
        services.snapshot_revert(actor=scenario.student, snapshot=snapshot)
    snapshot.refresh_from_db()
    desktop.refresh_from_db()
    assert snapshot.state == Snapshot.State.READY
    assert desktop.state in (Desktop.State.RUNNING, Desktop.State.STOPPED)

    with django_capture_on_commit_callbacks(execute=True):
        services.snapshot_delete(actor=scenario.student, snapshot=snapshot)
    snapshot.refresh_from_db()
    assert snapshot.state == Snapshot.State.DELETED
    assert driver_for(compute_env.endpoint).snapshot_list(desktop.vm_name) == []


def test_delete_removes_the_vm_and_marks_the_desktop_deleted(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    desktop = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_delete(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()

    assert desktop.state == Desktop.State.DELETED
    assert desktop.deleted_at is not None
    assert desktop.vm_name not in {vm.name for vm in driver_for(compute_env.endpoint).list_vms()}
    with pytest.raises(InvalidTransition):
        services.desktop_start(actor=scenario.student, desktop=desktop)


def test_a_flavor_larger_than_any_host_is_refused(scenario, compute_env):
    # 1 TiB: within common.limits' bound for a flavor, far beyond the test driver's host
    huge = services.flavor_create(actor=scenario.sysadmin, name="huge", vcpus=4, memory_mib=1024 * 1024, disk_gib=1)

    with pytest.raises(InvalidInput) as excinfo:
        services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=compute_env.version, flavor=huge
        )

    assert excinfo.value.code == ComputeError.FLAVOR_TOO_LARGE
    assert not Desktop.objects.exists()


def test_an_image_of_another_tenant_is_refused_as_unknown(scenario, compute_env):
    image = services.image_create(
        actor=scenario.sysadmin, name="ME only", visibility="tenant", tenant=scenario.tenant_b
    )
    version = services.image_version_register(
        actor=scenario.sysadmin, image=image, endpoint=compute_env.endpoint, pool="default-pool", volume="me.qcow2"
    )

    with pytest.raises(InvalidInput) as excinfo:
        services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=version, flavor=compute_env.flavor
        )
    assert excinfo.value.code == ComputeError.IMAGE_NOT_FOUND


def test_a_flavor_of_another_tenant_is_refused_as_unknown(scenario, compute_env):
    flavor = Flavor.objects.create(name="me-only", vcpus=1, memory_mib=128, disk_gib=1, tenant=scenario.tenant_b)

    with pytest.raises(InvalidInput) as excinfo:
        services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=compute_env.version, flavor=flavor
        )
    assert excinfo.value.code == ComputeError.FLAVOR_NOT_FOUND


def test_a_student_cannot_create_a_desktop_for_someone_else(scenario, compute_env):
    with pytest.raises(Forbidden):
        services.desktop_create(
            actor=scenario.student,
            tenant=scenario.tenant_a,
            image_version=compute_env.version,
            flavor=compute_env.flavor,
            owner=scenario.student2,
        )


def test_an_auditor_can_see_but_not_stop_a_desktop(scenario, compute_env):
    from tests.compute.conftest import desktop_of

    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)

    with pytest.raises(Forbidden):
        services.desktop_stop(actor=scenario.auditor, desktop=desktop)


def test_an_unreachable_endpoint_is_refused_with_a_clear_error(scenario):
    with pytest.raises(InvalidInput) as excinfo:
        services.endpoint_register(
            actor=scenario.sysadmin, name="dead", kind="libvirt", url="qemu+tcp://127.0.0.1:1/system"
        )

    assert excinfo.value.code == ComputeError.ENDPOINT_UNREACHABLE
    assert "无法连接" in excinfo.value.message
    assert not Endpoint.objects.filter(name="dead").exists()


def test_endpoint_password_is_encrypted_at_rest(scenario, compute_env):
    endpoint = compute_env.endpoint
    endpoint.set_password("s3cret-pass")
    endpoint.save()

    stored = Endpoint.objects.values_list("password_encrypted", flat=True).get(pk=endpoint.pk)
    assert "s3cret-pass" not in stored
    assert Endpoint.objects.get(pk=endpoint.pk).password == "s3cret-pass"


def test_placement_spreads_over_hosts_and_packs_when_asked(scenario, compute_env):
    from compute.models import Cluster, Host
    from compute.placement import place

    endpoint = compute_env.endpoint
    first = endpoint.hosts.get()
    second = Host.objects.create(endpoint=endpoint, name="second", cpus=8, memory_mib=8192, free_memory_mib=8192)
    Host.objects.filter(pk=first.pk).update(cpus=8, memory_mib=8192)
    from tests.compute.conftest import desktop_of

    busy = desktop_of(scenario.tenant_a, env=compute_env)
    Desktop.objects.filter(pk=busy.pk).update(host=first, memory_mib=4096)

    assert place(flavor=compute_env.flavor, image_version=compute_env.version).host == second
    Cluster.objects.filter(pk=endpoint.cluster_id).update(policy=Cluster.Policy.PACK)
    assert place(flavor=compute_env.flavor, image_version=compute_env.version).host == first


def test_a_gpu_flavor_goes_to_a_gpu_cluster_only(scenario, compute_env):
    from compute.models import GpuProfile

    profile = GpuProfile.objects.create(name="a100", mode="passthrough")
    gpu_flavor = Flavor.objects.create(name="gpu", vcpus=1, memory_mib=128, disk_gib=1, gpu_profile=profile)

    with pytest.raises(InvalidInput) as excinfo:
        services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=compute_env.version, flavor=gpu_flavor
        )
    assert excinfo.value.code == ComputeError.NO_HOST


def test_reconcile_fixes_drift_marks_missing_and_lists_orphans(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    from compute.reconcile import reconcile

    stopped_outside = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)
    vanished = _create(compute_env, scenario.student2, scenario.tenant_a, django_capture_on_commit_callbacks)
    driver = driver_for(compute_env.endpoint)
    driver.shutdown(stopped_outside.vm_name, force=True)
    driver.delete_vm(vanished.vm_name)

    summary = reconcile()

    assert summary["drift_fixed"] == 1
    assert summary["missing"] == 1
    # libvirt's test driver ships a domain named "test" that the portal does not know.
    assert summary["orphans"] == 1
    assert summary["orphan_vms"] == [{"endpoint": "testdrv", "name": "test"}]
    stopped_outside.refresh_from_db()
    vanished.refresh_from_db()
    assert stopped_outside.state == Desktop.State.STOPPED
    assert vanished.state == Desktop.State.ERROR
    assert "消失" in vanished.error_reason
    assert "test" in {vm.name for vm in driver.list_vms()}  # orphans are left alone


def test_a_second_user_with_the_same_tenant_role_does_not_see_the_desktop(scenario, compute_env):
    from compute.selectors import desktop_list_for
    from tests.compute.conftest import desktop_of

    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    other = factories.member("a_student3", scenario.tenant_a, "student")

    assert list(desktop_list_for(scenario.student)) == [desktop]
    assert list(desktop_list_for(other)) == []
    assert list(desktop_list_for(scenario.tenant_admin)) == [desktop]
    assert list(desktop_list_for(scenario.stranger_admin)) == []


def test_a_clone_copies_the_stopped_desktop_and_holds_it_until_the_copy_is_made(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    desktop = _create(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)
    with pytest.raises(InvalidTransition) as running:
        services.desktop_clone(actor=scenario.student, desktop=desktop)
    assert running.value.code == ComputeError.DESKTOP_MUST_BE_STOPPED and running.value.status == 409
    assert Desktop.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_stop(actor=scenario.student, desktop=desktop)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        clone = services.desktop_clone(actor=scenario.student, desktop=desktop)
        held = Desktop.objects.get(pk=desktop.pk)
        assert held.state == Desktop.State.BUSY and held.task_id == clone.task_id  # nobody starts it mid-copy
    assert callbacks
    clone.refresh_from_db()
    desktop.refresh_from_db()

    assert clone.pk != desktop.pk and clone.vm_name != desktop.vm_name
    assert (clone.image_version, clone.flavor, clone.owner, clone.endpoint) == (
        desktop.image_version,
        desktop.flavor,
        desktop.owner,
        desktop.endpoint,
    )
    assert clone.cloned_from == desktop
    assert clone.state == Desktop.State.RUNNING
    assert desktop.state == Desktop.State.STOPPED
    driver = driver_for(compute_env.endpoint)
    assert driver.get_vm(clone.vm_name).disks[0].volume == f"{clone.vm_name}-system.qcow2"
    assert driver.get_vm(desktop.vm_name).power_state == "stopped"


def test_a_version_retired_after_the_caller_read_it_is_refused_under_the_lock(scenario, compute_env):
    from compute.models import ImageVersion
    from tenants.models import Reservation

    version = compute_env.version  # read as ready; retired meanwhile by another transaction
    ImageVersion.objects.filter(pk=version.pk).update(status=ImageVersion.Status.RETIRED)
    assert version.status == ImageVersion.Status.READY

    with pytest.raises(InvalidInput) as refused:
        services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=version, flavor=compute_env.flavor
        )
    assert refused.value.code == ComputeError.IMAGE_NOT_READY
    assert not Desktop.objects.exists() and not Reservation.objects.exists()

"""vCenter takeover and reconciliation against the vCenter simulator (tools/vcsim), a private instance per test.

A private instance (``-vm N -l 127.0.0.1:0``) so each test sees exactly the inventory it
started, whatever other tests did to the shared one.
"""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from compute import services
from compute.errors import ComputeError
from compute.models import Desktop
from compute.reconcile import reconcile, vcenter_import
from tests.harness.vcsim import Vcsim

pytestmark = pytest.mark.vcsim


@pytest.fixture(scope="module")
def vcsim_300():
    sim = Vcsim("-vm", "300", "-autostart=true")
    yield sim.url
    sim.stop()


@pytest.fixture
def vcenter(scenario, vcsim_300):
    return services.endpoint_register(
        actor=scenario.sysadmin,
        name="vc",
        kind="vcenter",
        url=vcsim_300,
        username="administrator@vsphere.local",
        password="any-password",
    )


def test_import_vcenter_takes_over_every_vm_once(scenario, vcenter):
    # The import time is bench/provision.py's to measure (1,000 VMs); here: every VM, once.
    first = vcenter_import(actor=scenario.sysadmin, endpoint_name="vc", tenant_slug="cs")

    assert first["created"] == 300, first
    assert first["errors"] == []
    desktops = Desktop.objects.filter(endpoint=vcenter)
    assert desktops.count() == 300
    sample = desktops.order_by("vm_name").first()
    assert sample.tenant == scenario.tenant_a
    assert sample.imported
    assert sample.vcpus >= 1 and sample.memory_mib >= 32
    assert sample.state in ("running", "stopped")
    assert sample.hardware["disks"] and sample.hardware["nics"]
    assert not desktops.filter(vm_name="template-linux").exists()  # templates are images, not desktops

    second = vcenter_import(actor=scenario.sysadmin, endpoint_name="vc", tenant_slug="cs")
    assert second["created"] == 0
    assert second["updated"] == 0
    assert second["unchanged"] == 300


def test_import_vcenter_command_dry_run_changes_nothing_and_prints_json(scenario, vcenter):
    out = StringIO()
    call_command("import_vcenter", "--endpoint", "vc", "--tenant", "cs", "--dry-run", "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["created"] == 300
    assert {"created", "updated", "unchanged", "errors"} <= set(result)
    assert not Desktop.objects.exists()


def test_imported_vms_are_charged_and_an_overage_is_imported_uncharged_and_reported(scenario, vcenter):
    from tenants.models import Quota
    from tenants.services import quota_set

    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"desktops": 250})
    preview = vcenter_import(actor=scenario.sysadmin, endpoint_name="vc", tenant_slug="cs", dry_run=True)
    assert (preview["created"], len(preview["over_quota"]), preview["charged"]) == (300, 50, 0)
    assert not Desktop.objects.exists()

    out, err = StringIO(), StringIO()
    call_command("import_vcenter", "--endpoint", "vc", "--tenant", "cs", stdout=out, stderr=err)
    assert "charged to quota 250, over quota 50" in out.getvalue()
    assert "WARNING: 50 VMs were imported without being charged" in err.getvalue()
    desktops = Desktop.objects.filter(endpoint=vcenter)
    assert desktops.count() == 300  # every VM is taken over, over quota or not
    assert desktops.exclude(quota_reservation="").count() == 250
    quota = Quota.objects.get(scope="tenant", tenant=scenario.tenant_a)
    assert quota.used_desktops == 250
    assert quota.used_vcpu == sum(d.vcpus for d in desktops.exclude(quota_reservation=""))

    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"desktops": 300})
    again = json.loads(_import_json())
    assert (again["created"], again["charged"], again["over_quota"]) == (0, 50, [])
    quota.refresh_from_db()
    assert quota.used_desktops == 300
    assert json.loads(_import_json())["charged"] == 0  # charged once only


def _import_json() -> str:
    out = StringIO()
    call_command("import_vcenter", "--endpoint", "vc", "--tenant", "cs", "--json", stdout=out)
    return out.getvalue()


def test_import_vcenter_refuses_an_unknown_tenant(scenario, vcenter):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="tenant_not_found"):
        call_command("import_vcenter", "--endpoint", "vc", "--tenant", "nope", stdout=StringIO())


def test_a_power_change_in_vcenter_is_picked_up_by_reconcile(scenario, vcenter):
    from compute.hypervisor import driver_for

    vcenter_import(actor=scenario.sysadmin, endpoint_name="vc", tenant_slug="cs")
    desktop = Desktop.objects.filter(endpoint=vcenter, state="running").order_by("vm_name").first()
    driver_for(vcenter).shutdown(desktop.vm_name, force=True)

    out = StringIO()
    call_command("reconcile", "--json", stdout=out)
    summary = json.loads(out.getvalue())

    assert summary["drift_fixed"] == 1
    assert summary["missing"] == 0
    assert summary["orphans"] == 0
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.STOPPED
    assert reconcile()["drift_fixed"] == 0  # nothing left to fix


def test_a_wrong_vcenter_url_is_refused_when_registering(scenario):
    from common.errors import InvalidInput

    with pytest.raises(InvalidInput) as excinfo:
        services.endpoint_register(
            actor=scenario.sysadmin, name="vc-dead", kind="vcenter", url="http://127.0.0.1:1/sdk", username="u"
        )
    assert excinfo.value.code == ComputeError.ENDPOINT_UNREACHABLE


def test_a_desktop_cloned_from_a_vcenter_template_runs(scenario, vcenter, eager, django_capture_on_commit_callbacks):
    from compute.hypervisor import driver_for

    image = services.image_create(actor=scenario.sysadmin, name="Linux template")
    version = services.image_import_template(
        actor=scenario.sysadmin, image=image, endpoint=vcenter, template="template-linux"
    )
    flavor = services.flavor_create(actor=scenario.sysadmin, name="vc-small", vcpus=2, memory_mib=2048, disk_gib=40)

    with django_capture_on_commit_callbacks(execute=True):
        desktop = services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=version, flavor=flavor
        )
    desktop.refresh_from_db()

    assert desktop.state == Desktop.State.RUNNING, desktop.last_error
    vm = driver_for(vcenter).get_vm(desktop.vm_name)
    assert (vm.vcpus, vm.memory_mib) == (2, 2048)  # applied after the clone (vcsim ignores them in the clone spec)
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_delete(actor=scenario.student, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.DELETED
    assert desktop.vm_name not in {v.name for v in driver_for(vcenter).list_vms()}


def test_a_vcenter_desktop_is_cloned_from_its_vm_and_resized_by_reconfiguration(
    scenario, vcenter, eager, django_capture_on_commit_callbacks
):
    from compute.hypervisor import driver_for

    image = services.image_create(actor=scenario.sysadmin, name="Linux template")
    version = services.image_import_template(
        actor=scenario.sysadmin, image=image, endpoint=vcenter, template="template-linux"
    )
    flavor = services.flavor_create(actor=scenario.sysadmin, name="vc-small", vcpus=2, memory_mib=2048, disk_gib=40)
    larger = services.flavor_create(actor=scenario.sysadmin, name="vc-large", vcpus=4, memory_mib=4096, disk_gib=40)
    driver = driver_for(vcenter)

    def run(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            result = fn(**kwargs)
        result.refresh_from_db()
        return result

    source = run(
        services.desktop_create, actor=scenario.student, tenant=scenario.tenant_a, image_version=version, flavor=flavor
    )
    source = run(services.desktop_stop, actor=scenario.student, desktop=source)
    source = run(services.desktop_resize, actor=scenario.student, desktop=source, flavor=larger)
    assert (source.state, source.vcpus) == (Desktop.State.STOPPED, 4), source.last_error
    assert (driver.get_vm(source.vm_name).vcpus, driver.get_vm(source.vm_name).memory_mib) == (4, 4096)

    clone = run(services.desktop_clone, actor=scenario.student, desktop=source)
    source.refresh_from_db()

    assert clone.state == Desktop.State.RUNNING, clone.last_error
    assert source.state == Desktop.State.STOPPED
    copied = driver.get_vm(clone.vm_name)
    assert copied.uuid != driver.get_vm(source.vm_name).uuid
    assert [d.size_bytes for d in copied.disks] == [d.size_bytes for d in driver.get_vm(source.vm_name).disks]
    for desktop in (clone, source):
        run(services.desktop_delete, actor=scenario.student, desktop=desktop)
    assert not {clone.vm_name, source.vm_name} & {v.name for v in driver.list_vms()}


def test_an_unknown_template_is_refused(scenario, vcenter):
    from common.errors import InvalidInput

    image = services.image_create(actor=scenario.sysadmin, name="Nope")
    with pytest.raises(InvalidInput) as excinfo:
        services.image_import_template(actor=scenario.sysadmin, image=image, endpoint=vcenter, template="no-such")
    assert excinfo.value.code == ComputeError.IMAGE_TEMPLATE_NOT_FOUND

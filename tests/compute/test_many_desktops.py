"""compute's services for callers that act on many desktops at once (the classroom): power and reset in bulk,
handing a desktop over to another person, retiring an image version. On libvirt's test driver, tasks in-process."""

import pytest

from audit.models import AuditEvent
from common.errors import Conflict, Forbidden, InvalidInput, InvalidTransition
from compute import hooks, hypervisor, quota, services
from compute.errors import ComputeError
from compute.hypervisor import driver_for
from compute.models import Desktop, Flavor, ImageVersion, Snapshot


def _desktop(env, owner, tenant, capture) -> Desktop:
    with capture(execute=True):
        desktop = services.desktop_create(actor=owner, tenant=tenant, image_version=env.version, flavor=env.flavor)
    desktop.refresh_from_db()
    return desktop


def _stopped(env, owner, tenant, capture) -> Desktop:
    desktop = _desktop(env, owner, tenant, capture)
    with capture(execute=True):
        services.desktop_stop(actor=owner, desktop=desktop)
    desktop.refresh_from_db()
    return desktop


@pytest.fixture
def observed():
    seen = []

    def observer(*, desktop, at, reason):
        seen.append((desktop.pk, reason, desktop.owner_id))

    hooks.register_desktop_observer(observer)
    yield seen
    hooks.unregister_desktop_observer(observer)


def test_bulk_power_changes_the_desktops_whose_state_allows_it_and_leaves_the_others(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    running = _desktop(compute_env, scenario.student, scenario.tenant_a, capture)
    stopped = _stopped(compute_env, scenario.student2, scenario.tenant_a, capture)

    with capture(execute=True):
        changed = services.desktops_power(actor=None, desktops=[stopped.pk, running], verb="start")

    assert [d.pk for d in changed] == [stopped.pk]
    assert Desktop.objects.get(pk=stopped.pk).state == Desktop.State.RUNNING
    assert driver_for(compute_env.endpoint).get_vm(stopped.vm_name).power_state == "running"
    assert Desktop.objects.get(pk=running.pk).state == Desktop.State.RUNNING


def test_bulk_power_refuses_a_person_who_may_not_act_on_one_of_the_desktops(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    mine = _desktop(compute_env, scenario.student, scenario.tenant_a, capture)
    theirs = _desktop(compute_env, scenario.student2, scenario.tenant_a, capture)

    with pytest.raises(Forbidden):
        services.desktops_power(actor=scenario.student, desktops=[mine, theirs], verb="stop")

    assert set(Desktop.objects.values_list("state", flat=True)) == {Desktop.State.RUNNING}


def test_bulk_power_refuses_an_unknown_verb(scenario, compute_env):
    with pytest.raises(InvalidInput) as excinfo:
        services.desktops_power(actor=None, desktops=[], verb="hibernate")
    assert excinfo.value.code == ComputeError.POWER_VERB_INVALID


def test_every_power_verb_has_one_service(scenario):
    assert set(services.POWER_SERVICES) == set(Desktop.POWER_VERBS) == {"start", "stop", "reboot"}


def test_bulk_reset_gives_live_desktops_a_fresh_disk_and_leaves_busy_ones(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    live = _desktop(compute_env, scenario.student, scenario.tenant_a, capture)
    with capture(execute=True):
        services.snapshot_create(actor=scenario.student, desktop=live, name="before")
    busy = _desktop(compute_env, scenario.student2, scenario.tenant_a, capture)
    Desktop.objects.filter(pk=busy.pk).update(state=Desktop.State.BUSY)

    with capture(execute=True):
        reset = services.desktops_reset(actor=None, desktops=[live, busy])

    assert [d.pk for d in reset] == [live.pk]
    assert Desktop.objects.get(pk=live.pk).state == Desktop.State.RUNNING
    assert Snapshot.objects.get(desktop=live).state == Snapshot.State.DELETED  # they went with the old disk
    assert Desktop.objects.get(pk=busy.pk).state == Desktop.State.BUSY


def _second_version(scenario, env) -> ImageVersion:
    version = services.image_version_register(
        actor=scenario.sysadmin, image=env.image, endpoint=env.endpoint, pool="default-pool", volume="cc-v2.qcow2"
    )
    hypervisor.test_volume_ensure(
        driver_for(env.endpoint), pool="default-pool", volume="cc-v2.qcow2", size_bytes=1024**3
    )
    return version


def test_a_reset_onto_another_version_rebuilds_the_desktop_from_it(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    desktop = _stopped(compute_env, scenario.student, scenario.tenant_a, capture)
    version = _second_version(scenario, compute_env)

    with capture(execute=True):
        services.desktops_reset(actor=None, desktops=[desktop], image_version=version)

    desktop.refresh_from_db()
    assert desktop.image_version == version
    assert desktop.state == Desktop.State.STOPPED  # it was stopped, and is made again stopped
    assert desktop.vm_name in {vm.name for vm in driver_for(compute_env.endpoint).list_vms()}


def test_a_retired_version_is_not_given_to_a_desktop_by_a_reset(
    scenario, compute_env, eager, django_capture_on_commit_callbacks
):
    desktop = _stopped(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)
    version = _second_version(scenario, compute_env)
    services.image_version_retire(actor=scenario.sysadmin, version=version)

    with pytest.raises(InvalidInput) as excinfo:
        services.desktops_reset(actor=None, desktops=[desktop], image_version=version)

    assert excinfo.value.code == ComputeError.IMAGE_NOT_READY
    assert Desktop.objects.get(pk=desktop.pk).image_version == compute_env.version


def test_a_handed_over_desktop_is_reset_and_metered_to_its_new_owner(
    scenario, compute_env, eager, django_capture_on_commit_callbacks, observed
):
    capture = django_capture_on_commit_callbacks
    desktop = _desktop(compute_env, scenario.student, scenario.tenant_a, capture)
    with capture(execute=True):
        services.snapshot_create(actor=scenario.student, desktop=desktop, name="mine")

    with capture(execute=True):
        services.desktop_hand_over(actor=None, desktop=desktop, owner=scenario.student2, name="lab-a_student2")

    desktop.refresh_from_db()
    assert (desktop.owner, desktop.name, desktop.state) == (scenario.student2, "lab-a_student2", Desktop.State.RUNNING)
    assert (desktop.pk, "handed_over", scenario.student2.pk) in observed
    assert Snapshot.objects.get(desktop=desktop).state == Snapshot.State.DELETED


def test_a_desktop_that_is_not_live_is_not_handed_over(scenario, compute_env):
    from tests.compute.conftest import desktop_of

    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student, state=Desktop.State.ERROR)

    with pytest.raises(InvalidTransition):
        services.desktop_hand_over(actor=None, desktop=desktop, owner=scenario.student2)

    assert Desktop.objects.get(pk=desktop.pk).owner == scenario.student


def test_a_version_a_desktop_uses_is_not_retired(scenario, compute_env, eager, django_capture_on_commit_callbacks):
    _desktop(compute_env, scenario.student, scenario.tenant_a, django_capture_on_commit_callbacks)

    with pytest.raises(Conflict) as excinfo:
        services.image_version_retire(actor=None, version=compute_env.version)

    assert excinfo.value.code == ComputeError.IMAGE_VERSION_IN_USE
    assert ImageVersion.objects.get(pk=compute_env.version.pk).status == ImageVersion.Status.READY


def test_a_version_the_caller_still_uses_is_not_retired(scenario, compute_env):
    asked = []

    def in_use(version):
        asked.append(version.pk)
        return True

    with pytest.raises(Conflict):
        services.image_version_retire(actor=None, version=compute_env.version, in_use=in_use)

    assert asked == [compute_env.version.pk]
    assert ImageVersion.objects.get(pk=compute_env.version.pk).status == ImageVersion.Status.READY


def test_a_retired_version_makes_no_new_desktop_and_its_retirement_is_audited(scenario, compute_env):
    services.image_version_retire(actor=scenario.sysadmin, version=compute_env.version, tenant=scenario.tenant_a)

    with pytest.raises(InvalidInput) as excinfo:
        services.desktop_create(
            actor=scenario.student,
            tenant=scenario.tenant_a,
            image_version=ImageVersion.objects.get(pk=compute_env.version.pk),
            flavor=compute_env.flavor,
        )
    assert excinfo.value.code == ComputeError.IMAGE_NOT_READY
    event = AuditEvent.objects.get(action="image.version_retired", object_id=str(compute_env.version.pk))
    assert event.tenant_slug == scenario.tenant_a.slug
    with pytest.raises(InvalidTransition):  # once is enough
        services.image_version_retire(actor=None, version=compute_env.version)


def test_a_kept_golden_volume_is_recorded_on_the_version_and_audited(scenario, compute_env):
    services.image_version_volume_deleted(version_id=compute_env.version.pk, error="pool is gone")

    assert ImageVersion.objects.get(pk=compute_env.version.pk).last_error == "pool is gone"
    event = AuditEvent.objects.get(action="image.volume_deleted", object_id=str(compute_env.version.pk))
    assert (event.result, event.reason) == ("failure", "pool is gone")


def test_memory_takes_exactly_its_mib_from_the_ram_quota(db):
    flavor = Flavor(name="lab", vcpus=2, memory_mib=1536, disk_gib=20)
    share = quota.flavor_share(flavor, count=3)
    assert (share.vcpu, share.ram_mib, share.disk_gib, share.desktops) == (6, 3 * 1536, 60, 3)
    tiny = quota.flavor_share(Flavor(name="tiny", vcpus=1, memory_mib=256, disk_gib=10))
    assert tiny.ram_mib == 256

"""Migration's rules (who, where to, what the target lacks), its reports (finished, failed, cancelled),
billing's one interval, maintenance evacuation, and the ``migrate`` command in both its roles.

Hosts are libvirt's test driver (it cannot migrate): the task's run is covered here with a stand-in
source driver (the layer above the driver), and for real on the testbed (tests/testbed/test_migration.py).
"""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate

from audit.models import AuditEvent
from billing.models import MeterCursor, UsageInterval
from common.errors import Conflict, Forbidden, InvalidInput, InvalidTransition
from compute import hooks, services
from compute.drivers.base import MigrationProgress, MigrationResult, PowerState, VMInfo
from compute.errors import ComputeError
from compute.models import Desktop, DesktopMigration, Host, SharedStorage, StoragePool
from compute.placement import place
from compute.services import migration as migration_services

pytestmark = pytest.mark.django_db

POOL = "cc-shared"


def _host(scenario, name, address, *, site="east", cluster="east-general"):
    return services.host_add(
        actor=scenario.sysadmin,
        name=name,
        uri="test:///default",
        site=site,
        cluster=cluster,
        address=address,
        domain_type="qemu",
        storage_pool=POOL,
        shared_storage=True,
    )


@pytest.fixture
def hosts(scenario):
    """n1, n2, n3 in east-general with shared storage, w1 at site west."""
    made = {
        "n1": _host(scenario, "n1", "10.9.0.1"),
        "n2": _host(scenario, "n2", "10.9.0.2"),
        "n3": _host(scenario, "n3", "10.9.0.3"),
        "w1": _host(scenario, "w1", "10.9.1.1", site="west", cluster="west-general"),
    }
    SharedStorage.objects.create(
        cluster=made["n1"].endpoint.cluster, pool=POOL, kind="dir", path="/srv/shared", unsafe_migration=True
    )
    return made


def _desktop(scenario, host, *, name="d", state=Desktop.State.RUNNING, memory_mib=512):
    desktop = Desktop.objects.create(
        name=name,
        vm_name=f"cc-{name}",
        tenant=scenario.tenant_a,
        owner=scenario.student,
        endpoint=host.endpoint,
        host=host,
        storage_pool=POOL,
        memory_mib=memory_mib,
        state=state,
        power_state=Desktop.Power.RUNNING if state == Desktop.State.RUNNING else Desktop.Power.STOPPED,
    )
    hooks.desktop_changed(desktop=desktop, reason="test")
    return desktop


def test_a_running_desktop_goes_to_placements_choice_in_its_cluster_live_and_on_shared_storage(scenario, hosts):
    desktop = _desktop(scenario, hosts["n1"])
    _desktop(scenario, hosts["n2"], name="other", memory_mib=1024)  # n3 is then the emptiest
    migration = services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.MIGRATING and desktop.stable_state == Desktop.State.RUNNING
    assert (migration.source_name, migration.target_name) == ("n1", "n3")
    assert migration.kind == DesktopMigration.Kind.LIVE and not migration.copy_storage
    assert migration.state == DesktopMigration.State.QUEUED and desktop.task_id == migration.task_id
    event = AuditEvent.objects.get(action="desktop.migration_started")
    assert event.detail["from"] == "n1" and event.detail["to"] == "n3"
    # The candidates a page offers: the cluster's other hosts, the choice first; never the other site.
    # n3 counts the desktop on its way there: 512 MiB against n2's 1024.
    assert [h.name for h in services.migration_candidates(_desktop(scenario, hosts["n1"], name="x"))] == ["n3", "n2"]


def test_a_stopped_desktop_moves_cold(scenario, hosts):
    desktop = _desktop(scenario, hosts["n1"], state=Desktop.State.STOPPED)
    migration = services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=hosts["n2"])
    assert migration.kind == DesktopMigration.Kind.COLD and migration.target_name == "n2"


def test_refused_targets_say_why(scenario, hosts):
    desktop = _desktop(scenario, hosts["n1"])
    cases = [
        (hosts["n1"], InvalidInput, ComputeError.MIGRATION_HOST_SAME),
        (hosts["w1"], InvalidInput, ComputeError.MIGRATION_OTHER_CLUSTER),
    ]
    for target, error, code in cases:
        with pytest.raises(error) as exc:
            services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=target)
        assert exc.value.code == code
    Host.objects.filter(pk=hosts["n2"].pk).update(state=Host.State.MAINTENANCE)
    with pytest.raises(Conflict) as exc:
        services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=hosts["n2"])
    assert exc.value.code == ComputeError.MIGRATION_HOST_UNAVAILABLE and "维护" in exc.value.message
    StoragePool.objects.filter(endpoint=hosts["n3"].endpoint).delete()
    with pytest.raises(InvalidInput) as exc:
        services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=hosts["n3"])
    assert exc.value.code == ComputeError.MIGRATION_STORAGE_MISSING and POOL in exc.value.message
    assert exc.value.detail["missing"] == [f"存储池“{POOL}”"]
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING and not DesktopMigration.objects.exists()


def test_a_host_without_the_desktops_network_is_refused_with_its_name(scenario, hosts):
    desktop = _desktop(scenario, hosts["n1"])
    endpoint = hosts["n2"].endpoint
    endpoint.options = {"network": "lab-only"}
    endpoint.save()
    with pytest.raises(InvalidInput) as exc:
        services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=hosts["n2"])
    assert exc.value.code == ComputeError.MIGRATION_NETWORK_MISSING and "default" in exc.value.message


def test_only_the_system_admin_migrates_and_only_a_running_or_stopped_desktop(scenario, hosts):
    desktop = _desktop(scenario, hosts["n1"])
    with pytest.raises(Forbidden):
        services.desktop_migrate(actor=scenario.teacher, desktop=desktop)
    Desktop.objects.filter(pk=desktop.pk).update(state=Desktop.State.ERROR)
    with pytest.raises(InvalidTransition):
        services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop)
    Desktop.objects.filter(pk=desktop.pk).update(state=Desktop.State.RUNNING, gpus=1)
    with pytest.raises(InvalidInput) as exc:
        services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop)
    assert exc.value.code == ComputeError.MIGRATION_UNSUPPORTED


def _info(desktop, host) -> VMInfo:
    return VMInfo(
        name=desktop.vm_name,
        uuid="u-1",
        power_state=PowerState.RUNNING,
        vcpus=1,
        memory_mib=512,
        vnc_host=str(host.address),
        vnc_port=5901,
    )


def test_a_finished_migration_moves_the_desktop_console_and_keeps_one_billing_interval(scenario, hosts):
    desktop = _desktop(scenario, hosts["n1"])
    since = MeterCursor.objects.get(desktop=desktop).since
    migration = services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=hosts["n2"])
    assert migration_services.migration_begin(migration_id=migration.pk)
    assert not migration_services.migration_begin(migration_id=migration.pk)  # a duplicate message
    assert not migration_services.migration_progress(migration_id=migration.pk, data_total=100, data_remaining=40)
    assert DesktopMigration.objects.get(pk=migration.pk).percent == 60
    migration_services.migration_finish(
        migration_id=migration.pk, info=_info(desktop, hosts["n2"]), downtime_ms=42, duration_ms=1800
    )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING and desktop.host == hosts["n2"]
    assert desktop.endpoint == hosts["n2"].endpoint and desktop.vnc_host == "10.9.0.2"
    migration.refresh_from_db()
    assert migration.state == DesktopMigration.State.DONE and migration.downtime_ms == 42 and migration.percent == 100
    # Billing: the same open interval, nothing closed by the move.
    assert MeterCursor.objects.get(desktop=desktop).since == since
    assert not UsageInterval.objects.filter(desktop=desktop).exists()
    assert AuditEvent.objects.filter(action="desktop.migrated").count() == 1


def test_a_failed_or_cancelled_migration_leaves_the_desktop_running_where_it_was(scenario, hosts):
    desktop = _desktop(scenario, hosts["n1"])
    migration = services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=hosts["n2"])
    migration_services.migration_begin(migration_id=migration.pk)
    migration_services.migration_fail(migration_id=migration.pk, error="Unable to find network lab")
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING and desktop.host == hosts["n1"]
    assert desktop.last_error == "Unable to find network lab"
    assert DesktopMigration.objects.get(pk=migration.pk).state == DesktopMigration.State.FAILED

    second = services.desktop_migrate(actor=scenario.sysadmin, desktop=desktop, host=hosts["n2"])
    services.migration_cancel(actor=scenario.sysadmin, migration=second)
    assert migration_services.migration_progress(migration_id=second.pk, data_total=1, data_remaining=1)
    migration_services.migration_fail(migration_id=second.pk, cancelled=True)
    assert DesktopMigration.objects.get(pk=second.pk).state == DesktopMigration.State.CANCELLED
    assert Desktop.objects.get(pk=desktop.pk).state == Desktop.State.RUNNING
    with pytest.raises(Conflict):
        services.migration_cancel(actor=scenario.sysadmin, migration=second)


def test_maintenance_moves_every_desktop_away_and_lists_what_could_not_move(scenario, hosts):
    running = _desktop(scenario, hosts["n1"], name="a")
    stopped = _desktop(scenario, hosts["n1"], name="b", state=Desktop.State.STOPPED)
    broken = _desktop(scenario, hosts["n1"], name="c", state=Desktop.State.ERROR)
    out = io.StringIO()
    call_command("host_maintenance", "--name", "n1", "on", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["host"] == "n1" and result["state"] == "maintenance"
    assert result["moving"] == 2 and [d["desktop"] for d in result["not_moved"]] == [broken.pk]
    assert "错误" in result["not_moved"][0]["reason"]
    kinds = dict(DesktopMigration.objects.filter(state="queued").values_list("desktop_id", "kind"))
    assert kinds == {running.pk: "live", stopped.pk: "cold"}
    # Two desktops leave for two hosts: the first one's move counts on its target for the second.
    assert sorted(DesktopMigration.objects.filter(state="queued").values_list("target_name", flat=True)) == ["n2", "n3"]
    status = services.evacuation_status(Host.objects.get(name="n1"))
    assert status["counts"]["queued"] == 2 and not status["done"] and status["left"] == 3
    assert [m.desktop_id for m in status["not_moved"]] == [broken.pk]
    flavor = services.flavor_create(actor=scenario.sysadmin, name="s", vcpus=1, memory_mib=64, disk_gib=1)
    for _ in range(4):  # no new desktop lands on the host in maintenance
        assert place(flavor=flavor, image_version=None).host.name != "n1"
    services.host_maintenance(actor=scenario.sysadmin, name="n1", on=False)
    assert Host.objects.get(name="n1").state == Host.State.ENABLED


def test_the_migrate_command_without_desktop_is_djangos_migrate():
    ours, theirs = io.StringIO(), io.StringIO()
    call_command("migrate", "--plan", stdout=ours)
    call_command(DjangoMigrate(), "--plan", stdout=theirs)
    assert ours.getvalue() == theirs.getvalue() and "No planned migration operations." in ours.getvalue()
    call_command("migrate", "--check", stdout=io.StringIO())  # exits 0: the schema is up to date
    with pytest.raises(CommandError):
        call_command("migrate", "--host", "n1", stdout=io.StringIO())


class _Source:
    """Stands in for the source's and the target's driver: the move succeeds at once."""

    def __init__(self, info):
        self.info = info
        self.moved = []

    def migrate_vm(self, name, spec, progress=None):
        self.moved.append((name, spec))
        progress(MigrationProgress(data_total=10, data_processed=5, data_remaining=5))
        return MigrationResult(live=True, duration_ms=900)

    def get_vm(self, name):
        return self.info

    def migration_downtime(self, name):
        return 37

    def migration_disks_prepare(self, disks, *, copy):
        assert not copy  # shared storage: the target's pools are only refreshed
        return ()

    def network_ensure(self, spec):
        pass


@pytest.mark.django_db(transaction=True)  # the task starts on commit
def test_the_migrate_command_moves_a_desktop_and_prints_the_contract_json(scenario, hosts, eager, monkeypatch):
    desktop = _desktop(scenario, hosts["n1"])
    stand_in = _Source(_info(desktop, hosts["n2"]))
    monkeypatch.setattr("compute.tasks.migration.driver_for", lambda endpoint: stand_in)
    monkeypatch.setattr("compute.tasks.migration.desktop_bindings_push", lambda desktop: {})
    out = io.StringIO()
    call_command("migrate", "--desktop", str(desktop.pk), "--host", "n2", "--json", "--wait", "20", stdout=out)
    assert json.loads(out.getvalue()) == {"desktop": desktop.pk, "from": "n1", "to": "n2", "downtime_ms": 37}
    ((name, spec),) = stand_in.moved
    assert name == desktop.vm_name and spec.target_uri == hosts["n2"].endpoint.url
    assert spec.unsafe and not spec.copy_storage  # the cluster's storage says so
    desktop.refresh_from_db()
    assert desktop.host == hosts["n2"] and desktop.state == Desktop.State.RUNNING
    with pytest.raises(CommandError) as exc:
        call_command("migrate", "--desktop", str(desktop.pk), "--host", "w1", stdout=io.StringIO())
    assert "migration_other_cluster" in str(exc.value)

"""Issue #13.8's migrations on rows written before them: memory in GiB becomes MiB (× 1024), the desktops'
addresses join the "ips" quota, and stored auto-approval rules still approve what they approved."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("tenants", "0004_request_partial_parent_approver_rule_disk_ips")]
AFTER = [("tenants", "0006_ips_count_desktop_addresses")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_the_latest():
    """Whatever happens, the schema is the latest again for the tests after this one."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest")
def test_rows_written_in_gib_and_without_desktop_addresses_are_converted(scenario):
    old = _migrate(BEFORE)
    Tenant, Quota = old.get_model("tenants", "Tenant"), old.get_model("tenants", "Quota")
    Reservation = old.get_model("tenants", "Reservation")
    tenant = Tenant.objects.get(pk=scenario.tenant_a.pk)
    quota = Quota.objects.create(
        scope="tenant",
        tenant=tenant,
        key="tenant:mig",
        limit_ram_gib=4,
        used_ram_gib=1,
        reserved_ram_gib=1,
        limit_ips=5,
        used_ips=1,
    )
    Reservation.objects.create(tenant=tenant, state="committed", reason="desktop", ram_gib=1, desktops=1)
    Reservation.objects.create(tenant=tenant, state="reserved", reason="desktop", ram_gib=1, desktops=1)
    Reservation.objects.create(tenant=tenant, state="released", reason="desktop", ram_gib=1, desktops=1)
    Reservation.objects.create(tenant=tenant, state="committed", reason="elastic_ip", ips=1)
    Policy = old.get_model("tenants", "ApprovalPolicy")
    policy = Policy.objects.create(tenant=tenant, name="p")
    old.get_model("tenants", "AutoApprovalRule").objects.create(
        policy=policy, name="r", max_desktops=5, max_ram_gib=8, max_ips=0
    )

    new = _migrate(AFTER)

    quota = new.get_model("tenants", "Quota").objects.get(pk=quota.pk)
    assert (quota.limit_ram_mib, quota.used_ram_mib, quota.reserved_ram_mib) == (4096, 1024, 1024)
    assert (quota.limit_ips, quota.used_ips, quota.reserved_ips) == (5, 1 + 1, 1)
    rule = new.get_model("tenants", "AutoApprovalRule").objects.get(name="r")
    assert (rule.max_ram_mib, rule.max_ips) == (8192, 5)
    released = new.get_model("tenants", "Reservation").objects.get(state="released")
    assert (released.ram_mib, released.ips) == (1024, 0)

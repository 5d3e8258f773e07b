"""Issue #13.8's migrations on rows written before them: memory in GiB becomes MiB (× 1024), the desktops'
addresses join the "ips" quota, and stored auto-approval rules still approve what they approved.

The test migrates a database of its own from nothing to the state before and then after: the test
database the other tests of this process use keeps the latest schema, whatever happens here (taking
that one back and forth left it half-migrated for the next test when a step failed)."""

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
def own_database(django_db_blocker):
    """The default connection on a database of this test's own (made empty, dropped after): the
    migrations' own code (RunPython) writes through the default alias, so the alias is kept and
    only the database it names changes for the test."""
    with django_db_blocker.unblock():
        test_database = connection.settings_dict["NAME"]
        own = f"{test_database}_migrations"[:64]
        test = connection.settings_dict["TEST"]
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{own}`")
            cursor.execute(f"CREATE DATABASE `{own}` CHARACTER SET {test['CHARSET']} COLLATE {test['COLLATION']}")
        connection.close()
        connection.settings_dict["NAME"] = own
        try:
            yield own
        finally:
            connection.close()
            connection.settings_dict["NAME"] = test_database
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{own}`")


@pytest.mark.django_db(transaction=True)
def test_rows_written_in_gib_and_without_desktop_addresses_are_converted(own_database):
    old = _migrate(BEFORE)
    Tenant, Quota = old.get_model("tenants", "Tenant"), old.get_model("tenants", "Quota")
    Reservation = old.get_model("tenants", "Reservation")
    tenant = Tenant.objects.create(slug="mig", name_zh="迁移", path="/mig/")
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

"""Issue #13.8's migrations on rows written before them: memory in GiB becomes MiB (× 1024), the desktops'
addresses join the "ips" quota, and stored auto-approval rules still approve what they approved.

The test migrates a database of its own from nothing to the state before, then after
(tests/harness/migrations.py)."""

import pytest

from tests.harness.migrations import database_of_its_own, migrate

BEFORE = [("tenants", "0004_request_partial_parent_approver_rule_disk_ips")]
AFTER = [("tenants", "0006_ips_count_desktop_addresses")]


@pytest.fixture
def own_database(django_db_blocker):
    with database_of_its_own(django_db_blocker) as name:
        yield name


@pytest.mark.django_db(transaction=True)
def test_rows_written_in_gib_and_without_desktop_addresses_are_converted(own_database):
    old = migrate(BEFORE)
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

    new = migrate(AFTER)

    quota = new.get_model("tenants", "Quota").objects.get(pk=quota.pk)
    assert (quota.limit_ram_mib, quota.used_ram_mib, quota.reserved_ram_mib) == (4096, 1024, 1024)
    assert (quota.limit_ips, quota.used_ips, quota.reserved_ips) == (5, 1 + 1, 1)
    rule = new.get_model("tenants", "AutoApprovalRule").objects.get(name="r")
    assert (rule.max_ram_mib, rule.max_ips) == (8192, 5)
    released = new.get_model("tenants", "Reservation").objects.get(state="released")
    assert (released.ram_mib, released.ips) == (1024, 0)

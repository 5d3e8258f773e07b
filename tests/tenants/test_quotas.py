"""Quotas: limits at every level, reserve → commit → release, thresholds, and the race."""

import threading

import pytest
from django.core import mail
from django.db import connection

from common.errors import Forbidden, InvalidInput
from tenants.errors import TenantsError
from tenants.models import Quota, Reservation
from tenants.quotas import (
    QuotaExceeded,
    ResourceAmounts,
    quota_charge_existing,
    quota_check,
    quota_commit,
    quota_release,
    quota_reserve,
    quota_set,
)
from tests import factories


def test_reservation_counts_against_every_level_and_commit_moves_it_to_used(scenario, course):
    uni = quota_set(actor=None, tenant=scenario.university, limits={"vcpu": 100})
    cs = quota_set(actor=None, tenant=scenario.tenant_a, limits={"vcpu": 50, "desktops": 20})
    cs101 = quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 10})

    reservation = quota_reserve(
        tenant=scenario.tenant_a, course=course, amounts=ResourceAmounts(vcpu=8, desktops=4), reason="t"
    )
    for quota in (uni, cs, cs101):
        quota.refresh_from_db()
    assert (uni.reserved_vcpu, cs.reserved_vcpu, cs.reserved_desktops, cs101.reserved_desktops) == (8, 8, 4, 4)

    quota_commit(reservation=reservation)
    cs.refresh_from_db()
    assert (cs.reserved_vcpu, cs.used_vcpu, cs.used_desktops) == (0, 8, 4)

    quota_release(reservation=reservation)
    cs.refresh_from_db()
    assert (cs.used_vcpu, cs.reserved_vcpu) == (0, 0)
    assert Reservation.objects.get().state == Reservation.State.RELEASED


def test_quota_refuses_the_11th_desktop_and_says_by_how_much(scenario, course):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 10})
    quota_reserve(tenant=scenario.tenant_a, course=course, amounts=ResourceAmounts(desktops=8), reason="t")

    with pytest.raises(QuotaExceeded) as refused:
        quota_reserve(tenant=scenario.tenant_a, course=course, amounts=ResourceAmounts(desktops=3), reason="t")

    (shortfall,) = refused.value.shortfalls
    assert (shortfall.resource, shortfall.available, shortfall.short_by) == ("desktops", 2, 1)
    assert refused.value.status == 409 and refused.value.code == TenantsError.QUOTA_EXCEEDED
    assert refused.value.detail["shortfalls"][0]["short_by"] == 1
    assert "还差 1" in refused.value.message
    assert Reservation.objects.count() == 1


def test_parent_quota_binds_a_child_without_its_own(scenario, course):
    quota_set(actor=None, tenant=scenario.university, limits={"gpus": 2})
    shortfalls = quota_check(tenant=scenario.tenant_a, course=course, amounts=ResourceAmounts(gpus=3))
    assert [(s.scope, s.resource, s.short_by) for s in shortfalls] == [("tenant", "gpus", 1)]


def test_child_quota_cannot_exceed_its_parent(scenario):
    quota_set(actor=None, tenant=scenario.university, limits={"vcpu": 100})
    with pytest.raises(InvalidInput) as refused:
        quota_set(actor=None, tenant=scenario.tenant_a, limits={"vcpu": 101})
    assert refused.value.code == TenantsError.QUOTA_EXCEEDS_PARENT


def test_parent_quota_cannot_drop_below_a_child(scenario):
    quota_set(actor=None, tenant=scenario.university, limits={"vcpu": 100})
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"vcpu": 80})
    with pytest.raises(Exception) as refused:
        quota_set(actor=None, tenant=scenario.university, limits={"vcpu": 50})
    assert refused.value.code == TenantsError.QUOTA_BELOW_CHILDREN


def test_a_new_quota_starts_with_the_usage_already_in_its_scope(scenario, course):
    reservation = quota_reserve(tenant=scenario.tenant_a, course=course, amounts=ResourceAmounts(vcpu=6), reason="t")
    quota_commit(reservation=reservation)
    quota_reserve(tenant=scenario.tenant_a, amounts=ResourceAmounts(vcpu=2), reason="t")
    quota = quota_set(actor=None, tenant=scenario.tenant_a, limits={"vcpu": 10})
    assert (quota.used_vcpu, quota.reserved_vcpu) == (6, 2)


def test_only_the_parents_admin_sets_a_tenants_quota(scenario):
    with pytest.raises(Forbidden):
        quota_set(actor=scenario.tenant_admin, tenant=scenario.tenant_a, limits={"vcpu": 10})
    with pytest.raises(Forbidden):
        quota_set(actor=scenario.teacher, tenant=scenario.tenant_a, limits={"vcpu": 10})
    assert quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"vcpu": 10}).limit_vcpu == 10


def test_tenant_admin_sets_course_and_user_quotas_in_their_tenant_only(scenario, course, stranger_course):
    assert quota_set(actor=scenario.tenant_admin, tenant=scenario.tenant_a, course=course, limits={"desktops": 5})
    assert quota_set(actor=scenario.tenant_admin, tenant=scenario.tenant_a, user=scenario.teacher, limits={"vcpu": 4})
    with pytest.raises(Forbidden):
        quota_set(actor=scenario.tenant_admin, tenant=scenario.tenant_b, course=stranger_course, limits={"desktops": 5})


def test_commit_and_release_twice_are_harmless(scenario):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"vcpu": 10})
    reservation = quota_reserve(tenant=scenario.tenant_a, amounts=ResourceAmounts(vcpu=4), reason="t")
    quota_commit(reservation=reservation)
    quota_commit(reservation=reservation)
    quota_release(reservation=reservation)
    quota_release(reservation=reservation)
    quota = Quota.objects.get()
    assert (quota.used_vcpu, quota.reserved_vcpu) == (0, 0)


def test_thresholds_notify_the_tenant_admin_once_per_crossing(scenario, django_capture_on_commit_callbacks):
    scenario.tenant_admin.email = "a_admin@example.edu"
    scenario.tenant_admin.save()
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 10})

    def reserve(n):
        with django_capture_on_commit_callbacks(execute=True):
            return quota_reserve(tenant=scenario.tenant_a, amounts=ResourceAmounts(desktops=n), reason="t")

    reserve(7)
    assert len(mail.outbox) == 0
    eighty = reserve(1)
    assert [m.to for m in mail.outbox] == [["a_admin@example.edu"]]
    assert "80%" in mail.outbox[0].subject
    reserve(1)  # 90 %: still the same crossing
    assert len(mail.outbox) == 1
    reserve(1)  # 100 %
    assert len(mail.outbox) == 2 and "100%" in mail.outbox[1].subject

    with django_capture_on_commit_callbacks(execute=True):
        quota_release(reservation=eighty)  # back to 90 %: re-arms 100 %
    reserve(1)
    assert len(mail.outbox) == 3


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_reservations_against_room_for_ten_let_exactly_ten_through():
    uni = factories.TenantFactory(slug="uni")
    tenant = factories.TenantFactory(slug="cs", parent=uni)
    quota_set(actor=None, tenant=uni, limits={"desktops": 100, "vcpu": 400})
    quota_set(actor=None, tenant=tenant, limits={"desktops": 10, "vcpu": 40})
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker():
        try:
            barrier.wait()
            try:
                quota_reserve(tenant=tenant, amounts=ResourceAmounts(desktops=1, vcpu=4), reason="race")
                result = "ok"
            except QuotaExceeded:
                result = "refused"
            with lock:
                outcomes.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 40
    quota = Quota.objects.get(tenant=tenant)
    assert (quota.reserved_desktops, quota.reserved_vcpu) == (10, 40)
    assert Reservation.objects.filter(tenant=tenant).count() == 10
    assert Quota.objects.get(tenant=uni).reserved_desktops == 10


def test_recount_fixes_and_audits_counters_that_drifted(scenario, course):
    from audit.models import AuditEvent
    from tenants.quotas import quota_recount
    from tenants.tasks import quota_recount_task

    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 10})
    quota_reserve(tenant=scenario.tenant_a, amounts=ResourceAmounts(desktops=3), reason="t")
    Quota.objects.filter(tenant=scenario.tenant_a).update(reserved_desktops=9, used_desktops=1)  # a manual edit

    result = quota_recount()
    quota = Quota.objects.get(tenant=scenario.tenant_a)
    assert (quota.reserved_desktops, quota.used_desktops) == (3, 0)
    assert result["fixed"] == [quota.key]
    assert AuditEvent.objects.filter(action="quota.changed", reason="recount").count() == 1
    assert quota_recount_task()["fixed"] == []  # idempotent


def test_existing_resources_are_charged_in_order_while_they_fit_with_one_audit_event(
    scenario, django_assert_max_num_queries
):
    from audit.models import AuditEvent

    uni = quota_set(actor=None, tenant=scenario.university, limits={"vcpu": 100})
    cs = quota_set(actor=None, tenant=scenario.tenant_a, limits={"vcpu": 10, "desktops": 5})
    before = AuditEvent.objects.count()
    shares = [
        ResourceAmounts(vcpu=4, desktops=1),
        ResourceAmounts(vcpu=8, desktops=1),
        ResourceAmounts(vcpu=6, desktops=1),
    ]
    shares += [ResourceAmounts(vcpu=0, desktops=1)] * 40  # the query count does not grow with the batch

    with django_assert_max_num_queries(15):
        charged = quota_charge_existing(tenant=scenario.tenant_a, shares=shares, reason="imported desktop")

    # 4 fits, 8 does not beside it, 6 does (10 in all); then 3 more desktops reach the limit of 5.
    assert [r is not None for r in charged[:3]] == [True, False, True]
    assert sum(r is not None for r in charged) == 5
    assert all(r.state == Reservation.State.COMMITTED and r.pk for r in charged if r is not None)
    cs.refresh_from_db()
    uni.refresh_from_db()
    assert (cs.used_vcpu, cs.used_desktops, cs.reserved_vcpu, uni.used_vcpu) == (10, 5, 0, 10)
    event = AuditEvent.objects.order_by("-pk").first()
    assert AuditEvent.objects.count() == before + 1
    assert event.action == "quota.committed" and event.detail["charged"] == 5 and event.detail["not_charged"] == 38

    released = next(r for r in charged if r is not None)
    quota_release(reservation=released)  # a charged VM deleted later gives its share back
    cs.refresh_from_db()
    assert (cs.used_vcpu, cs.used_desktops) == (6, 4)

"""A pool's seats are requested ten to a transaction (compute.classroom.services.seats.SEAT_BATCH): the
queries per seat do not grow with the pool, a refusal mid-batch leaves the seats after it with the
reason, every desktop keeps its own audit events and reservation, and the chain still verifies."""

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from audit import chain
from audit.actions import Action
from audit.models import AuditEvent
from compute.classroom import services
from compute.classroom.models import Seat
from compute.models import Cluster, Desktop, Host
from tenants.models import Quota, Reservation, RosterEntry
from tenants.quotas import quota_set
from tests.classroom.conftest import make_course


def _room_for(env, desktops: int) -> None:
    """The test driver's host takes exactly ``desktops`` more desktops of the env's flavor (memory bound)."""
    Cluster.objects.update(memory_overcommit=1, cpu_overcommit=1)
    Host.objects.update(cpus=1000, memory_mib=env.flavor.memory_mib * desktops + env.flavor.memory_mib // 2)


def _pool(scenario, env, course, capture):
    with capture(execute=False):
        return services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)


def test_the_queries_per_seat_do_not_grow_with_the_pool(scenario, env, django_capture_on_commit_callbacks):
    _room_for(env, 100)

    large_course = make_course(scenario, students=24, code="CS2401")
    small_course = make_course(scenario, students=2, code="CS401")  # the same people: the first students
    for entry in large_course.roster.order_by("student_number")[2:4]:
        RosterEntry.objects.create(course=small_course, user=entry.user, student_number=entry.student_number)

    def queries(course) -> int:
        with CaptureQueriesContext(connection) as captured:
            _pool(scenario, env, course, django_capture_on_commit_callbacks)
        assert Seat.objects.filter(pool__course=course, desktop__isnull=True).count() == 0
        return len(captured.captured_queries)

    small, large = queries(small_course), queries(large_course)
    assert small_course.roster.count() == 4
    # A seat costs its placement, its desktop's insert and task id, and a share of its batch's
    # (33 queries a seat when each seat had its own transaction).
    assert (large - small) / 20 <= 7, (small, large)


def test_a_refusal_mid_batch_leaves_the_seats_after_it_with_the_reason_and_the_quota_exact(
    scenario, env, django_capture_on_commit_callbacks
):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 100})
    course = make_course(scenario, students=25, code="CS250")
    _room_for(env, 13)  # the 14th seat (in the second batch) finds no room
    pool = _pool(scenario, env, course, django_capture_on_commit_callbacks)

    seats = list(pool.seats.order_by("pk"))
    assert [s.desktop_id is not None for s in seats] == [True] * 13 + [False] * 12
    assert all(s.error for s in seats[13:]) and not any(s.error for s in seats[:13])
    quota = Quota.objects.get(tenant=scenario.tenant_a, scope=Quota.Scope.TENANT)
    assert quota.reserved_desktops + quota.used_desktops == 13
    live = Reservation.objects.filter(tenant=scenario.tenant_a).exclude(state=Reservation.State.RELEASED)
    assert live.count() == 13
    assert {d.quota_reservation for d in Desktop.objects.filter(course=course)} == {str(r.pk) for r in live}

    _room_for(env, 100)  # the retry from the pool page takes the rest
    with django_capture_on_commit_callbacks(execute=False):
        assert services.pool_seats_provision(actor=scenario.teacher, pool=pool) == 12
    assert not pool.seats.filter(desktop__isnull=True).exists()
    assert not pool.seats.exclude(error="").exists()
    quota.refresh_from_db()
    assert quota.reserved_desktops + quota.used_desktops == 25


def test_every_desktop_of_a_batch_has_its_own_events_and_the_chain_verifies(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    _room_for(env, 100)
    course = make_course(scenario, students=12, code="CS120")
    with django_capture_on_commit_callbacks(execute=True):  # the worker's side too, eagerly
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    desktops = {str(pk) for pk in Desktop.objects.filter(course=course).values_list("pk", flat=True)}
    assert len(desktops) == 12
    created = AuditEvent.objects.filter(action=Action.DESKTOP_CREATED, object_id__in=desktops)
    provisioned = AuditEvent.objects.filter(action=Action.DESKTOP_PROVISIONED, object_id__in=desktops)
    assert sorted(created.values_list("object_id", flat=True)) == sorted(desktops)
    assert sorted(provisioned.values_list("object_id", flat=True)) == sorted(desktops)
    reservations = [int(r) for r in Desktop.objects.filter(course=course).values_list("quota_reservation", flat=True)]
    for action in (Action.QUOTA_RESERVED, Action.QUOTA_COMMITTED):
        ids = AuditEvent.objects.filter(action=action, object_type="tenants.reservation")
        assert {int(i) for i in ids.values_list("object_id", flat=True)} >= set(reservations)
    assert all(s.desktop.state != Desktop.State.PROVISIONING for s in pool.seats.select_related("desktop"))
    assert chain.verify().ok


@pytest.mark.django_db(transaction=True)  # only the outermost transaction is run again
def test_a_batch_chosen_as_a_deadlock_victim_runs_again_without_a_second_desktop(scenario, env, eager, monkeypatch):
    from compute import services as compute_services

    _room_for(env, 100)
    course = make_course(scenario, students=12, code="CS121")
    real, calls = compute_services.desktops_create, []

    def once_a_victim(**kwargs):
        calls.append(len(kwargs["wanted"]))
        if len(calls) == 1:
            real(**kwargs)  # written, then rolled back with the batch's transaction
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return real(**kwargs)

    monkeypatch.setattr(compute_services, "desktops_create", once_a_victim)
    pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    assert calls == [10, 10, 2]
    assert Desktop.objects.filter(course=course).count() == 12
    assert not pool.seats.filter(desktop__isnull=True).exists()

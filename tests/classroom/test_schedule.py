"""The class schedule on libvirt's test driver: the clock is driven with time-machine and the beat
task is called directly (never slept for). Tasks run in-process."""

import datetime

import pytest
import time_machine

from audit.models import AuditEvent
from common.errors import Conflict, InvalidInput
from compute import services as compute_services
from compute.classroom import services
from compute.classroom.errors import ErrorCode
from compute.classroom.models import ClassSession, ConsoleTicket, DesktopPool
from compute.classroom.tasks import schedule_tick
from compute.hypervisor import driver_for
from compute.models import Desktop, ImageVersion
from tests.classroom.conftest import MONDAY, at, make_course


@pytest.fixture
def pool(scenario, env, eager, django_capture_on_commit_callbacks):
    course = make_course(scenario, students=3)
    with django_capture_on_commit_callbacks(execute=True):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    with django_capture_on_commit_callbacks(execute=True):
        services.pool_power(actor=scenario.teacher, pool=pool, verb="stop")
    return pool


def _states(pool) -> list[str]:
    return sorted(Desktop.objects.filter(seat__pool=pool).values_list("state", flat=True))


def _tick(capture, when):
    with time_machine.travel(when, tick=False), capture(execute=True):
        return schedule_tick.apply().get()


def test_the_pool_is_powered_on_the_lead_time_before_class_and_off_after_it(
    pool, env, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    assert _states(pool) == ["stopped"] * 3

    assert _tick(capture, at(MONDAY, 9, 40))["powered_on"] == 0  # 20 minutes before: too early
    assert _states(pool) == ["stopped"] * 3

    assert _tick(capture, at(MONDAY, 9, 46))["powered_on"] == 3  # within the 15-minute lead
    assert _states(pool) == ["running"] * 3
    vms = {vm.name: vm.power_state for vm in driver_for(env.endpoint).list_vms()}
    assert all(vms[d.vm_name] == "running" for d in Desktop.objects.filter(seat__pool=pool))
    assert _tick(capture, at(MONDAY, 10, 30))["powered_on"] == 0  # done once per class

    assert _tick(capture, at(MONDAY, 11, 45))["stopped"] == 0  # class over, grace period running
    assert _states(pool) == ["running"] * 3

    assert _tick(capture, at(MONDAY, 11, 51))["stopped"] == 3
    assert _states(pool) == ["stopped"] * 3
    _tick(capture, at(MONDAY, 11, 52))
    assert ClassSession.objects.get(pool=pool).state == ClassSession.State.DONE
    assert AuditEvent.objects.filter(action="pool.schedule_run").count() >= 2


def test_a_connected_student_postpones_the_shutdown_with_a_warning(pool, scenario, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _tick(capture, at(MONDAY, 9, 50))
    desktop = Desktop.objects.get(seat__pool=pool, owner=scenario.student)
    after_class = at(MONDAY, 11, 55)
    ticket = ConsoleTicket.objects.create(
        token_hash="x" * 64,
        desktop=desktop,
        user=scenario.student,
        host="127.0.0.1",
        port=5900,
        expires_at=after_class,
        used_at=after_class - datetime.timedelta(minutes=30),
        seen_at=after_class - datetime.timedelta(seconds=20),
    )

    summary = _tick(capture, after_class)

    assert summary["connected"] == 1 and summary["stopped"] == 2
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING
    session = ClassSession.objects.get(pool=pool)
    assert session.warnings == 1 and scenario.student.username in session.last_warning
    assert session.state == ClassSession.State.SHUTTING_DOWN
    assert AuditEvent.objects.filter(action="pool.schedule_run", result="failure").exists()

    ConsoleTicket.objects.filter(pk=ticket.pk).update(closed_at=after_class)
    assert _tick(capture, after_class + datetime.timedelta(minutes=1))["stopped"] == 1
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.STOPPED


def _connected(desktop, user, when):
    """A console the proxy reports as in use at ``when`` (its heartbeat marks it every 20 s)."""
    ticket, _created = ConsoleTicket.objects.get_or_create(
        token_hash=f"{desktop.pk:064d}",
        defaults={
            "desktop": desktop,
            "user": user,
            "host": "127.0.0.1",
            "port": 5900,
            "expires_at": when,
            "used_at": when - datetime.timedelta(hours=1),
        },
    )
    ConsoleTicket.objects.filter(pk=ticket.pk).update(seen_at=when - datetime.timedelta(seconds=10))


@pytest.mark.parametrize("deadline_minutes", [None, 45])
def test_a_connected_student_postpones_the_shutdown_only_until_the_pools_deadline(
    pool, scenario, env, deadline_minutes, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    if deadline_minutes is not None:
        services.pool_settings_update(actor=scenario.teacher, pool=pool, shutdown_deadline_minutes=deadline_minutes)
    pool.refresh_from_db()
    minutes = deadline_minutes or 30  # the default: half an hour after the class ends (11:40)
    assert pool.shutdown_deadline_minutes == minutes
    deadline = at(MONDAY, 11, 40) + datetime.timedelta(minutes=minutes)
    _tick(capture, at(MONDAY, 9, 50))
    desktop = Desktop.objects.get(seat__pool=pool, owner=scenario.student)

    _connected(desktop, scenario.student, at(MONDAY, 11, 55))
    assert services.shutdown_notice(desktop, at(MONDAY, 11, 55)) is None  # nothing put off yet
    summary = _tick(capture, at(MONDAY, 11, 55))
    assert (summary["connected"], summary["stopped"], summary["forced"]) == (1, 2, 0)
    # The student is told when the desktop will go off anyway.
    assert services.shutdown_notice(desktop, at(MONDAY, 11, 56)) == deadline
    assert deadline.strftime("%H:%M") in ClassSession.objects.get(pool=pool).last_warning

    last_postponed = deadline - datetime.timedelta(minutes=1)
    _connected(desktop, scenario.student, last_postponed)
    assert _tick(capture, last_postponed)["connected"] == 1
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING

    _connected(desktop, scenario.student, deadline)  # still connected at the deadline
    summary = _tick(capture, deadline)
    assert (summary["connected"], summary["forced"], summary["stopped"]) == (0, 1, 1)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.STOPPED
    assert driver_for(env.endpoint).get_vm(desktop.vm_name).power_state == "stopped"
    session = ClassSession.objects.get(pool=pool)
    assert session.forced_at == deadline and session.warnings == 2
    assert scenario.student.username in session.last_warning
    forced = AuditEvent.objects.filter(action="pool.schedule_run", detail__forced=1).get()
    assert datetime.datetime.fromisoformat(forced.detail["deadline"]) == deadline
    assert services.shutdown_notice(desktop, deadline) is None

    _tick(capture, deadline + datetime.timedelta(minutes=1))
    assert ClassSession.objects.get(pool=pool).state == ClassSession.State.DONE


def test_a_deadline_before_the_shutdown_delay_is_refused(pool, scenario, api):
    with pytest.raises(InvalidInput) as refused:
        services.pool_settings_update(actor=scenario.teacher, pool=pool, shutdown_deadline_minutes=5)
    assert refused.value.code == ErrorCode.POOL_DEADLINE_INVALID
    response = api.as_user(scenario.teacher).patch(
        f"/api/v1/pools/{pool.pk}/", {"shutdown_after_minutes": 60}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == ErrorCode.POOL_DEADLINE_INVALID
    response = api.as_user(scenario.teacher).patch(
        f"/api/v1/pools/{pool.pk}/", {"shutdown_after_minutes": 60, "shutdown_deadline_minutes": 90}, format="json"
    )
    assert response.status_code == 200 and response.json()["shutdown_deadline_minutes"] == 90
    pool.refresh_from_db()
    assert (pool.shutdown_after_minutes, pool.shutdown_deadline_minutes) == (60, 90)


def test_the_schedules_power_and_reset_reach_the_desktop_observers_once_settled(
    pool, scenario, django_capture_on_commit_callbacks
):
    """The schedule changes desktops through compute's tasks: each change that affects cost (the
    power state) is reported by compute's settle, with the state the desktop ended in."""
    from compute import hooks

    capture = django_capture_on_commit_callbacks
    services.pool_settings_update(actor=scenario.teacher, pool=pool, persistence=DesktopPool.Persistence.RESET)
    seen = []

    def observer(*, desktop, at, reason):
        seen.append((desktop.pk, reason, desktop.power_state))

    ids = {d.pk for d in _desktops(pool)}
    hooks.register_desktop_observer(observer)
    try:
        _tick(capture, at(MONDAY, 9, 50))
        assert sorted(seen) == sorted((pk, "settled", "running") for pk in ids)
        seen.clear()
        _tick(capture, at(MONDAY, 11, 51))  # stops
        _tick(capture, at(MONDAY, 11, 52))  # resets each stopped seat
    finally:
        hooks.unregister_desktop_observer(observer)
    assert sorted(seen) == sorted([(pk, "settled", "stopped") for pk in ids] * 2)


def test_a_skipped_class_and_a_holiday_are_left_alone(pool, scenario, django_capture_on_commit_callbacks):
    class_time = pool.course.class_times.get()
    services.schedule_exception_add(actor=scenario.teacher, pool=pool, date=MONDAY, class_time_id=class_time.pk)
    next_monday = MONDAY + datetime.timedelta(days=7)
    services.schedule_exception_add(actor=scenario.teacher, pool=pool, date=next_monday, reason="国庆")

    assert _tick(django_capture_on_commit_callbacks, at(MONDAY, 9, 50))["powered_on"] == 0
    assert _tick(django_capture_on_commit_callbacks, at(next_monday, 9, 50))["powered_on"] == 0
    assert _states(pool) == ["stopped"] * 3
    assert services.next_class(pool, at(MONDAY, 9))[1] == MONDAY + datetime.timedelta(days=14)
    assert AuditEvent.objects.filter(action="pool.class_skipped").count() == 2


def test_a_skip_on_a_date_without_that_class_is_refused(pool, scenario):
    class_time = pool.course.class_times.get()
    with pytest.raises(InvalidInput) as refused:
        services.schedule_exception_add(
            actor=scenario.teacher, pool=pool, date=MONDAY + datetime.timedelta(days=1), class_time_id=class_time.pk
        )
    assert refused.value.code == ErrorCode.CLASS_NOT_ON_DATE


def test_classes_follow_the_term_dates(pool):
    before_term = datetime.date(2026, 8, 24)  # a Monday before term_start
    assert services.classes_between(pool, at(before_term, 0), at(before_term, 23)) == []
    assert len(services.classes_between(pool, at(MONDAY, 0), at(MONDAY, 23))) == 1


def test_a_reset_after_class_pool_resets_after_the_class_never_during(
    pool, scenario, env, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    services.pool_settings_update(actor=scenario.teacher, pool=pool, persistence=DesktopPool.Persistence.RESET)
    disks = {d.vm_name: driver_for(env.endpoint).get_vm(d.vm_name).disks[0].volume for d in _desktops(pool)}

    _tick(capture, at(MONDAY, 9, 50))
    _tick(capture, at(MONDAY, 10, 30))
    with time_machine.travel(at(MONDAY, 10, 30), tick=False), pytest.raises(Conflict) as refused:
        services.pool_reset(actor=scenario.teacher, pool=pool)
    assert refused.value.code == ErrorCode.POOL_IN_CLASS
    assert {d.vm_name: driver_for(env.endpoint).get_vm(d.vm_name).disks[0].volume for d in _desktops(pool)} == disks

    _tick(capture, at(MONDAY, 11, 51))  # stops
    assert _tick(capture, at(MONDAY, 11, 52))["reset"] == 3  # then resets each stopped seat once
    assert _tick(capture, at(MONDAY, 11, 53))["reset"] == 0
    after = {d.vm_name: driver_for(env.endpoint).get_vm(d.vm_name).disks[0].volume for d in _desktops(pool)}
    assert all(after[name] != disks[name] for name in disks)
    assert _states(pool) == ["stopped"] * 3
    assert ClassSession.objects.get(pool=pool).state == ClassSession.State.DONE


def _desktops(pool):
    return list(Desktop.objects.filter(seat__pool=pool).order_by("pk"))


def test_a_published_image_reaches_the_pool_at_its_next_reset_never_mid_class(
    pool, scenario, env, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        session = services.authoring_start(
            actor=scenario.teacher, course=pool.course, image_version=env.version, flavor=env.flavor
        )
    session.desktop.refresh_from_db()
    with capture(execute=True):
        compute_services.desktop_stop(actor=scenario.teacher, desktop=session.desktop)
    with capture(execute=True):
        services.authoring_publish(actor=scenario.teacher, session=session)
    session.refresh_from_db()
    assert session.state == session.State.PUBLISHED, session.last_error
    new = session.published_version
    assert new.version == 1 and new.status == ImageVersion.Status.READY
    # What the course installed is the course's: a version of its own image, not of the shared one
    # (which every tenant sees).
    assert (new.image.visibility, new.image.course_id) == ("course", pool.course.pk)
    assert not ImageVersion.objects.filter(image=env.version.image).exclude(pk=env.version.pk).exists()
    pool.refresh_from_db()
    assert pool.image_version == new
    assert {d.image_version_id for d in _desktops(pool)} == {env.version.pk}  # nobody moved yet

    _tick(capture, at(MONDAY, 9, 50))
    seat = pool.seats.select_related("desktop").first()
    with time_machine.travel(at(MONDAY, 10, 30), tick=False), capture(execute=True):
        services.seat_reset(actor=scenario.teacher, seat=seat)  # mid-class: same version
    seat.desktop.refresh_from_db()
    assert seat.desktop.image_version_id == env.version.pk and seat.desktop.state == Desktop.State.RUNNING

    with time_machine.travel(at(MONDAY, 13), tick=False), capture(execute=True):
        services.pool_reset(actor=scenario.teacher, pool=pool)  # after class: the new version
    desktops = _desktops(pool)
    assert {d.image_version_id for d in desktops} == {new.pk}
    assert {d.state for d in desktops} == {Desktop.State.RUNNING}
    backing = driver_for(env.endpoint).get_vm(desktops[0].vm_name).disks[0].backing
    assert backing.endswith(new.volume)

    # The version the teacher started from is the platform's base image: other courses use it, so
    # a publication never retires it, not even once nothing of this course uses it any more.
    with capture(execute=True):
        compute_services.desktop_delete(actor=scenario.teacher, desktop=session.desktop)
    assert services.versions_retire_unused() == 0
    env.version.refresh_from_db()
    assert env.version.status == ImageVersion.Status.READY

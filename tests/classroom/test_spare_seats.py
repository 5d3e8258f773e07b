"""Spare seats and flavor changes of a running pool (#13.1), on libvirt's test driver with tasks
in-process: a pool with more seats than its roster provisions the spares like the others, shows them
as 空闲座位, gives them to students joining the roster, keeps their number as the roster changes; a
changed flavor reaches a running desktop when it stops."""

import datetime

import pytest
from django.test import Client

from compute import services as compute_services
from compute.classroom import services
from compute.classroom.models import Seat
from compute.models import Desktop
from tenants.models import ApprovalRequest, RosterEntry
from tenants.services import request_approve
from tests import factories
from tests.classroom.conftest import make_course

State = ApprovalRequest.State


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def spare_pool(scenario, env, eager, settings, django_capture_on_commit_callbacks):
    """Three students, five seats: two spare."""
    settings.SECOND_FACTOR_REQUIRED = False
    course = make_course(scenario, students=3)
    with django_capture_on_commit_callbacks(execute=True):
        pool = services.pool_create(
            actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor, seats=5
        )
    return course, pool


def test_spare_seats_are_provisioned_like_the_others_and_belong_to_the_teacher(scenario, spare_pool):
    course, pool = spare_pool
    seats = list(pool.seats.select_related("desktop"))
    assert len(seats) == 5 and pool.seat_target == 5
    spares = [s for s in seats if s.is_spare]
    assert len(spares) == 2
    for seat in spares:
        assert seat.desktop.state == Desktop.State.STOPPED  # made, and following the schedule
        assert seat.desktop.owner == scenario.teacher and seat.desktop.course == course
    assert {s.student_id for s in seats if not s.is_spare} == set(course.roster.values_list("user_id", flat=True))


def test_the_pool_page_shows_spare_seats_as_such_and_counts_them_ready(scenario, spare_pool):
    _course, pool = spare_pool
    html = _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/").content.decode()
    assert "5 / 5 就绪" in html
    assert html.count('data-testid="seat"') == 5
    assert html.count('data-testid="spare"') == 2 and "空闲座位" in html


def test_a_student_joining_the_roster_takes_a_spare_seat_reset_for_them(
    scenario, env, spare_pool, django_capture_on_commit_callbacks
):
    course, pool = spare_pool
    newcomer = factories.member("a_latecomer", scenario.tenant_a, "student")
    RosterEntry.objects.create(course=course, user=newcomer, student_number="20269990")

    with django_capture_on_commit_callbacks(execute=True):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)

    assert (result.assigned, result.added, result.retired) == (1, 0, 0)
    seat = Seat.objects.select_related("desktop").get(pool=pool, student=newcomer)
    assert seat.desktop.owner == newcomer and seat.desktop.name.endswith(newcomer.username)
    active = pool.seats.filter(state=Seat.State.ACTIVE)
    assert active.count() == 5 and active.filter(student__isnull=True).count() == 1


def test_the_spare_seats_are_kept_when_a_student_leaves_and_the_roster_import_keeps_them(
    scenario, spare_pool, django_capture_on_commit_callbacks
):
    course, pool = spare_pool
    leaver_seat = pool.seats.get(student=scenario.student)
    RosterEntry.objects.filter(course=course, user=scenario.student).delete()
    with django_capture_on_commit_callbacks(execute=True):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)

    # The pool keeps its five seats: the leaver's stays as a third spare (reset, back to the teacher)
    # instead of being deleted while a new spare is made.
    assert (result.freed, result.retired, result.added, result.spares_added) == (1, 0, 0, 0)
    active = pool.seats.filter(state=Seat.State.ACTIVE)
    assert active.count() == 5 and active.filter(student__isnull=True).count() == 3
    assert not active.filter(student=scenario.student).exists()
    leaver_seat.refresh_from_db()
    assert leaver_seat.is_spare and leaver_seat.state == Seat.State.ACTIVE
    desktop = Desktop.objects.get(pk=leaver_seat.desktop_id)
    assert desktop.owner == scenario.teacher and desktop.name.endswith("-spare")


def test_a_roster_bigger_than_the_pool_adds_seats_and_no_spare(
    scenario, spare_pool, django_capture_on_commit_callbacks
):
    course, pool = spare_pool
    for n in range(3):
        user = factories.member(f"a_more{n}", scenario.tenant_a, "student")
        RosterEntry.objects.create(course=course, user=user, student_number=f"2026800{n}")
    with django_capture_on_commit_callbacks(execute=True):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    assert (result.assigned, result.added) == (2, 1)
    active = pool.seats.filter(state=Seat.State.ACTIVE)
    assert active.count() == 6 and not active.filter(student__isnull=True).exists()


def _wizard(client, course, env, flavor, seats):
    return client.post(
        "/request/new/",
        {
            "course": course.pk,
            "image_version": env.version.pk,
            "flavor": flavor.pk,
            "seats": seats,
            "persistence": "persistent",
            "apply": "now",
            "reason": "",
            "ct-TOTAL_FORMS": "1",
            "ct-INITIAL_FORMS": "1",
            "ct-MIN_NUM_FORMS": "0",
            "ct-MAX_NUM_FORMS": "14",
            "ct-0-weekday": "1",
            "ct-0-start_time": "10:00",
            "ct-0-end_time": "11:40",
        },
    )


def test_three_more_seats_through_the_wizard_go_through_approval_and_become_spare_seats(
    scenario, env, eager, settings, django_capture_on_commit_callbacks
):
    from network.models import Network

    settings.SECOND_FACTOR_REQUIRED = False
    Network.objects.create(tenant=scenario.tenant_a, name="cs-lab")
    course = make_course(scenario, students=2)
    with django_capture_on_commit_callbacks(execute=True):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)

    with django_capture_on_commit_callbacks(execute=True):
        response = _wizard(_client(scenario.teacher), course, env, env.flavor, seats=5)
    assert response.status_code == 302, response.content.decode()[:2000]
    change = ApprovalRequest.objects.exclude(pk=pool.request_id).get()
    assert change.state == State.PENDING  # three more desktops: more quota, so approval
    assert change.desktops == 3 and change.payload["seats"] == 5

    with django_capture_on_commit_callbacks(execute=True):
        request_approve(actor=scenario.tenant_admin, request=change)
    change.refresh_from_db()
    pool.refresh_from_db()
    assert change.state == State.FULFILLED and change.fulfilment_detail["ready"] == 5
    active = pool.seats.filter(state=Seat.State.ACTIVE)
    assert pool.seat_target == 5 and active.count() == 5 and active.filter(student__isnull=True).count() == 3
    assert "5 / 5 就绪" in _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/").content.decode()


def test_a_running_desktop_keeps_its_flavor_until_the_next_class_powers_it_on_and_the_page_says_so(
    scenario, env, spare_pool, django_capture_on_commit_callbacks
):
    from compute.classroom.services.fulfilment import _resize_stopped
    from tests.classroom.conftest import MONDAY, at

    _course, pool = spare_pool
    bigger = compute_services.flavor_create(actor=scenario.sysadmin, name="medium", vcpus=2, memory_mib=256, disk_gib=1)
    busy = pool.seats.select_related("desktop").get(student=scenario.student)
    with django_capture_on_commit_callbacks(execute=True):
        compute_services.desktop_start(actor=scenario.student, desktop=busy.desktop)
    pool.flavor = bigger
    pool.save(update_fields=["flavor"])
    with django_capture_on_commit_callbacks(execute=True):
        _resize_stopped(pool, bigger)  # what an approved change "at the next class" does

    desktops = Desktop.objects.filter(seat__pool=pool)
    assert desktops.exclude(pk=busy.desktop_id).filter(flavor=bigger).count() == 4  # stopped: resized at once
    busy.desktop.refresh_from_db()
    assert busy.desktop.flavor == env.flavor and busy.desktop.state == Desktop.State.RUNNING
    html = _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/").content.decode()
    assert html.count('data-testid="flavor-pending"') == 1
    notice = html.split('data-testid="pool-flavor-pending"')[1].split("</div>")[0]
    assert "下次上课时生效" in notice and "medium" in notice

    # Stopping after class is not the next class: the flavor stays until the schedule powers it on.
    with django_capture_on_commit_callbacks(execute=True):
        compute_services.desktop_stop(actor=scenario.student, desktop=busy.desktop)
    busy.desktop.refresh_from_db()
    assert busy.desktop.flavor == env.flavor and busy.desktop.state == Desktop.State.STOPPED

    next_monday = MONDAY + datetime.timedelta(days=7)
    with django_capture_on_commit_callbacks(execute=True):
        summary = services.schedule_tick(now=at(next_monday, 9, 50))
    assert summary["powered_on"] == 5
    busy.desktop.refresh_from_db()
    assert busy.desktop.flavor == bigger and busy.desktop.vcpus == 2
    assert busy.desktop.state == Desktop.State.RUNNING
    assert desktops.filter(state=Desktop.State.RUNNING, flavor=bigger).count() == 5
    busy.refresh_from_db()
    assert not busy.flavor_restart
    html = _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/").content.decode()
    assert 'data-testid="flavor-pending"' not in html and 'data-testid="pool-flavor-pending"' not in html


def test_a_flavor_change_applied_at_once_restarts_running_desktops_with_the_new_flavor(
    scenario, env, eager, settings, django_capture_on_commit_callbacks
):
    from network.models import Network

    settings.SECOND_FACTOR_REQUIRED = False
    Network.objects.create(tenant=scenario.tenant_a, name="cs-lab")
    course = make_course(scenario, students=2)
    with django_capture_on_commit_callbacks(execute=True):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    busy = pool.seats.select_related("desktop").get(student=scenario.student)
    with django_capture_on_commit_callbacks(execute=True):
        compute_services.desktop_start(actor=scenario.student, desktop=busy.desktop)
    bigger = compute_services.flavor_create(actor=scenario.sysadmin, name="medium", vcpus=2, memory_mib=256, disk_gib=1)

    with django_capture_on_commit_callbacks(execute=True):
        response = _wizard(_client(scenario.teacher), course, env, bigger, seats=2)  # "apply": "now"
    assert response.status_code == 302, response.content.decode()[:2000]
    change = ApprovalRequest.objects.exclude(pk=pool.request_id).get()
    if change.state == State.PENDING:
        with django_capture_on_commit_callbacks(execute=True):
            request_approve(actor=scenario.tenant_admin, request=change)

    busy.desktop.refresh_from_db()
    assert busy.desktop.flavor == bigger and busy.desktop.state == Desktop.State.RUNNING
    other = pool.seats.select_related("desktop").get(student=scenario.student2).desktop
    assert other.flavor == bigger and other.state == Desktop.State.STOPPED  # stopped: resized, left stopped
    assert not pool.seats.filter(flavor_restart=True).exists()


def test_the_roster_preview_says_a_newcomer_takes_a_spare_seat_and_nothing_is_added(scenario, spare_pool):
    course, _pool = spare_pool
    keep = set(course.roster.values_list("user_id", flat=True))
    preview = services.roster_preview(course=course, keep_user_ids=keep, new_accounts=1)
    assert (preview["seats_now"], preview["seats_after"]) == (5, 5)
    assert (preview["added"], preview["assigned"], preview["handed_over"], preview["retired"]) == (0, 1, 1, 0)

    preview = services.roster_preview(course=course, keep_user_ids=keep, new_accounts=4)
    assert (preview["seats_after"], preview["added"], preview["assigned"]) == (7, 2, 2)


def test_a_leaver_beyond_the_pools_spares_is_retired_and_the_preview_says_which_stay_spare(
    scenario, spare_pool, django_capture_on_commit_callbacks
):
    course, pool = spare_pool
    # Two of three leave and nobody joins: five seats wanted, so both leavers' seats stay as spares.
    keep = {scenario.student2.pk}
    preview = services.roster_preview(course=course, keep_user_ids=keep, new_accounts=0)
    assert (preview["seats_after"], preview["freed"], preview["retired"], preview["added"]) == (5, 2, 0, 0)

    # With the pool down to its roster (no spares wanted), leavers' seats are retired, not kept.
    pool.seat_target = 0
    pool.save(update_fields=["seat_target"])
    preview = services.roster_preview(course=course, keep_user_ids=keep, new_accounts=0)
    assert (preview["freed"], preview["retired"]) == (0, 2)

    pool.seat_target = 4
    pool.save(update_fields=["seat_target"])
    preview = services.roster_preview(course=course, keep_user_ids=keep, new_accounts=0)
    # Four seats for one student: three spares wanted, two are there, one leaver's seat stays.
    assert (preview["seats_after"], preview["freed"], preview["retired"]) == (4, 1, 1)
    RosterEntry.objects.filter(course=course).exclude(user_id__in=keep).delete()
    with django_capture_on_commit_callbacks(execute=True):
        result = services.pool_sync_roster(actor=scenario.teacher, pool=pool)
    assert (result.freed, result.retired, result.added, result.spares_added) == (1, 1, 0, 0)
    active = pool.seats.filter(state=Seat.State.ACTIVE)
    assert active.count() == 4 and active.filter(student__isnull=True).count() == 3


def test_the_course_page_preview_says_a_leavers_desktop_stays_as_a_spare_seat(scenario, spare_pool):
    from django.core.files.uploadedfile import SimpleUploadedFile

    course, _pool = spare_pool
    teacher = _client(scenario.teacher)
    page_url = f"/tenants/courses/{course.pk}/"
    upload = SimpleUploadedFile("roster.csv", "20260002,乙\n20260003,丙\n".encode(), content_type="text/csv")
    response = teacher.post(page_url, {"action": "import", "file": upload, "replace": "on"})
    assert response.status_code == 302, response.content.decode()[:500]
    page = teacher.get(response["Location"]).content.decode()
    freed = page.split('data-testid="roster-preview-freed"')[1].split("</span>")[0]
    assert "1 台离开学生的桌面重置后留作空闲座位" in freed
    assert "回收 0 台" in page

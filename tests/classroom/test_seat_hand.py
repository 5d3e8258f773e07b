"""A teacher's own hand on a pool's seats (#13.1), on libvirt's test driver with tasks in-process: a
spare seat given to a roster student without one (its desktop reset and handed to them), a student's
seat taken back as a spare (reset, the leaver's data disks per the pool's setting), from the pool page
and the API; the refusals with their codes; another tenant's seat is a 404."""

import pytest
from django.test import Client

from audit.models import AuditEvent
from compute.classroom import services
from compute.classroom.models import DesktopPool, Seat
from compute.hypervisor import driver_for
from compute.models import Desktop
from tenants.models import RosterEntry
from tests import factories
from tests.classroom.conftest import make_course


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


def _spare(pool) -> Seat:
    return pool.seats.filter(state=Seat.State.ACTIVE, student__isnull=True).select_related("desktop").first()


def test_a_taken_back_seat_becomes_a_spare_with_a_fresh_system_disk_owned_by_the_teacher(
    scenario, env, spare_pool, django_capture_on_commit_callbacks
):
    _course, pool = spare_pool
    seat = pool.seats.select_related("desktop").get(student=scenario.student)
    old_disk = driver_for(env.endpoint).get_vm(seat.desktop.vm_name).disks[0].volume

    with django_capture_on_commit_callbacks(execute=True):
        services.seat_take_back(actor=scenario.teacher, seat=seat)

    seat.refresh_from_db()
    desktop = Desktop.objects.get(pk=seat.desktop_id)
    assert seat.is_spare and seat.state == Seat.State.ACTIVE
    assert desktop.owner == scenario.teacher and desktop.name.endswith("-spare")
    assert desktop.state == Desktop.State.STOPPED
    # 等保: nothing of the student's system disk is left for the next holder.
    assert driver_for(env.endpoint).get_vm(desktop.vm_name).disks[0].volume != old_disk
    event = AuditEvent.objects.get(action="pool.seat_taken_back")
    assert event.actor_id == scenario.teacher.pk and event.detail["from"] == scenario.student.username
    assert event.detail["data_disks"] == DesktopPool.LeaverDisks.KEEP


def test_a_spare_seat_given_to_a_roster_student_without_one_is_reset_for_them(
    scenario, spare_pool, django_capture_on_commit_callbacks
):
    _course, pool = spare_pool
    with django_capture_on_commit_callbacks(execute=True):
        services.seat_take_back(actor=scenario.teacher, seat=pool.seats.get(student=scenario.student))
    spare = pool.seats.filter(student__isnull=True).exclude(desktop__name__endswith=scenario.student.username)
    spare = spare.select_related("desktop").first()

    assert scenario.student in services.seats_free_students(pool)
    with django_capture_on_commit_callbacks(execute=True):
        services.seat_assign(actor=scenario.teacher, seat=spare, student=scenario.student)

    spare.refresh_from_db()
    desktop = Desktop.objects.get(pk=spare.desktop_id)
    assert spare.student == scenario.student and desktop.owner == scenario.student
    assert desktop.name.endswith(scenario.student.username)
    assert services.seats_free_students(pool) == []
    assert AuditEvent.objects.filter(action="pool.seat_assigned", actor_id=scenario.teacher.pk).count() == 1


def test_the_api_refuses_a_seated_student_a_stranger_and_a_student_seat_with_codes(scenario, api, spare_pool):
    _course, pool = spare_pool
    spare = _spare(pool)
    url = f"/api/v1/pools/{pool.pk}/seats/{spare.pk}/assign/"
    client = api.as_user(scenario.teacher)

    seated = client.post(url, {"student": scenario.student.username}, format="json")
    assert seated.status_code == 409 and seated.json()["code"] == "student_seated"

    outsider = factories.member("a_outsider", scenario.tenant_a, "student")
    off_roster = client.post(url, {"student": outsider.username}, format="json")
    assert off_roster.status_code == 400 and off_roster.json()["code"] == "student_not_on_roster"

    student_seat = pool.seats.get(student=scenario.student)
    taken = client.post(
        f"/api/v1/pools/{pool.pk}/seats/{student_seat.pk}/assign/", {"student": "a_stu03"}, format="json"
    )
    assert taken.status_code == 409 and taken.json()["code"] == "seat_not_spare"

    again = client.post(f"/api/v1/pools/{pool.pk}/seats/{spare.pk}/take-back/")
    assert again.status_code == 409 and again.json()["code"] == "seat_spare"


def test_the_api_takes_a_seat_back_and_gives_it_to_the_student_left_without_one(
    scenario, api, spare_pool, django_capture_on_commit_callbacks
):
    _course, pool = spare_pool
    client = api.as_user(scenario.teacher)
    seat = pool.seats.get(student=scenario.student2)
    with django_capture_on_commit_callbacks(execute=True):
        back = client.post(f"/api/v1/pools/{pool.pk}/seats/{seat.pk}/take-back/")
    assert back.status_code == 200 and back.json()["student"] is None

    spare = _spare(pool)
    with django_capture_on_commit_callbacks(execute=True):
        given = client.post(
            f"/api/v1/pools/{pool.pk}/seats/{spare.pk}/assign/", {"student": scenario.student2.username}, format="json"
        )
    assert given.status_code == 200 and given.json()["student"] == scenario.student2.username


def test_only_the_teacher_and_tenant_admins_hand_seats_and_another_tenant_gets_404(scenario, api, spare_pool):
    _course, pool = spare_pool
    seat = pool.seats.get(student=scenario.student)
    url = f"/api/v1/pools/{pool.pk}/seats/{seat.pk}/take-back/"

    assert api.as_user(scenario.stranger).post(url).status_code == 404
    assert api.as_user(scenario.stranger_admin).post(url).status_code == 404
    assert api.as_user(scenario.student).post(url).status_code == 404
    assert api.as_user(scenario.student2).post(url).status_code == 404
    # A seat of another pool under this pool's address is not found either.
    other = make_course(scenario, students=0, code="CS999")
    other_pool = DesktopPool.objects.create(
        course=other, tenant=other.tenant, name="x", image_version=pool.image_version, flavor=pool.flavor
    )
    assert (
        api.as_user(scenario.teacher).post(f"/api/v1/pools/{other_pool.pk}/seats/{seat.pk}/take-back/").status_code
        == 404
    )
    seat.refresh_from_db()
    assert seat.student == scenario.student

    assert api.as_user(scenario.tenant_admin).post(url).status_code == 200


def test_the_pool_page_offers_take_back_with_one_confirmation_and_the_spares_to_students_without_a_seat(
    scenario, spare_pool, django_capture_on_commit_callbacks
):
    course, pool = spare_pool
    client = _client(scenario.teacher)
    html = client.get(f"/classroom/pools/{pool.pk}/").content.decode()
    assert html.count('data-testid="take-back"') == 3
    assert "收回" in html and "数据盘卸载后保留给该学生" in html
    # Everyone on the roster is seated: nobody to give a spare seat to.
    assert 'data-testid="assign"' not in html

    seat = pool.seats.get(student=scenario.student)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/classroom/seats/{seat.pk}/action/", {"action": "take_back"}, follow=True)
    assert "现为空闲座位" in response.content.decode()
    # Once its reset is done (the task ran after the request), the new spare is offered too.
    html = client.get(f"/classroom/pools/{pool.pk}/").content.decode()
    assert html.count('data-testid="assign"') == 3 and html.count('data-testid="take-back"') == 2

    spare = _spare(pool)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/classroom/seats/{spare.pk}/action/",
            {"action": "assign", "student": scenario.student.pk},
            follow=True,
        )
    assert "已分配给" in response.content.decode()
    assert pool.seats.get(pk=spare.pk).student == scenario.student

    # A student of another course (not on this roster) is refused with a message, not a 500.
    response = client.post(
        f"/classroom/seats/{_spare(pool).pk}/action/",
        {"action": "assign", "student": scenario.stranger.pk},
        follow=True,
    )
    assert response.status_code == 200 and "不在课程名单上" in response.content.decode()
    assert RosterEntry.objects.filter(course=course).count() == 3


def test_a_student_posting_to_the_seat_action_gets_404(scenario, spare_pool):
    _course, pool = spare_pool
    seat = pool.seats.get(student=scenario.student2)
    response = _client(scenario.student).post(f"/classroom/seats/{seat.pk}/action/", {"action": "take_back"})
    assert response.status_code == 404
    response = _client(scenario.stranger).post(f"/classroom/seats/{seat.pk}/action/", {"action": "take_back"})
    assert response.status_code == 404


def test_the_pool_page_costs_the_same_queries_with_more_spare_seats(
    scenario, env, eager, settings, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.SECOND_FACTOR_REQUIRED = False
    client = _client(scenario.teacher)
    counts = []
    for code, seats in (("CS201", 3), ("CS202", 9)):
        course = make_course(scenario, students=2, code=code)
        with django_capture_on_commit_callbacks(execute=True):
            pool = services.pool_create(
                actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor, seats=seats
            )
        with django_capture_on_commit_callbacks(execute=True):
            services.seat_take_back(actor=scenario.teacher, seat=pool.seats.get(student=scenario.student))
        client.get(f"/classroom/pools/{pool.pk}/")  # warm: the session and the caches
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/classroom/pools/{pool.pk}/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]

"""Issue #13.3: the pool follows its roster. An import or a removal updates the pool in the same step (new
seats provisioned, leavers' seats handed over or retired); the page shows what will change before it is
applied and nothing changes until the teacher confirms; the API's dry run says the same; the course page
links its pool."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from compute.classroom import services
from compute.classroom.models import Seat
from compute.models import Desktop
from tenants.models import RosterEntry
from tenants.services import course_roster_import, course_roster_remove
from tests.classroom.conftest import make_course

# make_course's students are numbered 2026000n; two more come with these rows.
ROWS = "20260001,甲\n20260002,乙\n20269101,新一\n20269102,新二\n"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _pool(scenario, env, capture, students=2):
    course = make_course(scenario, students=students)
    with capture(execute=True):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    return course, pool


def _upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("r.csv", text.encode(), content_type="text/csv")


def test_a_roster_import_provisions_the_new_students_seats_at_once(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course, pool = _pool(scenario, env, django_capture_on_commit_callbacks)
    rows = [(n, number, name) for n, (number, name) in enumerate((r.split(",") for r in ROWS.split()), start=1)]
    with django_capture_on_commit_callbacks(execute=True):
        counts = course_roster_import(actor=scenario.teacher, course=course, rows=rows)
    assert counts["added"] == 2 and counts["pool"]["added"] == 2
    seats = pool.seats.filter(state=Seat.State.ACTIVE).select_related("desktop")
    assert seats.count() == 4 == course.roster.count()
    # Made at once, and stopped like the others outside class: the schedule starts them before it.
    assert {s.desktop.state for s in seats} == {Desktop.State.STOPPED}


def test_removing_a_student_retires_their_seat(scenario, env, eager, django_capture_on_commit_callbacks):
    course, pool = _pool(scenario, env, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        course_roster_remove(actor=scenario.teacher, course=course, user=scenario.student2)
    seat = Seat.objects.select_related("desktop").get(pool=pool, student=scenario.student2)
    assert seat.state == Seat.State.RETIRED and seat.desktop.state == Desktop.State.DELETED


def test_the_page_previews_a_replacing_import_and_changes_nothing_until_confirmed(
    scenario, env, eager, django_capture_on_commit_callbacks
):
    course, pool = _pool(scenario, env, django_capture_on_commit_callbacks)
    teacher = _client(scenario.teacher)
    page_url = f"/tenants/courses/{course.pk}/"
    # Replace the roster: student2 (20260002) leaves, two newcomers join.
    response = teacher.post(
        page_url, {"action": "import", "file": _upload("20260001,甲\n20269101,新一\n20269102,新二\n"), "replace": "on"}
    )
    assert response.status_code == 302 and response["Location"].endswith("?preview=1")
    page = teacher.get(response["Location"]).content.decode()
    assert 'data-testid="roster-preview"' in page
    assert "20260002" in page.split('data-testid="roster-preview-removed"')[1].split("</p>")[0]
    # Seats 2 -> 3: one leaver's desktop handed over (reset), one new desktop.
    assert "2 → 3" in page and "新建桌面 1 台" in page and "转交 1 台" in page
    assert course.roster.count() == 2 and pool.seats.count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(page_url, {"action": "import_confirm"})
    assert response.status_code == 302
    assert set(course.roster.values_list("student_number", flat=True)) == {"20260001", "20269101", "20269102"}
    active = pool.seats.filter(state=Seat.State.ACTIVE)
    assert active.count() == 3 and not active.filter(student=scenario.student2).exists()
    assert "已导入" in teacher.get(page_url).content.decode()


def test_a_cancelled_import_changes_nothing(scenario, env, eager, django_capture_on_commit_callbacks):
    course, pool = _pool(scenario, env, django_capture_on_commit_callbacks)
    teacher = _client(scenario.teacher)
    page_url = f"/tenants/courses/{course.pk}/"
    teacher.post(page_url, {"action": "import", "file": _upload("20269101,新一\n"), "replace": "on"})
    teacher.post(page_url, {"action": "import_cancel"})
    assert teacher.post(page_url, {"action": "import_confirm"}).status_code == 302  # nothing pending any more
    assert course.roster.count() == 2 and pool.seats.count() == 2


def test_the_api_dry_run_says_what_would_change(scenario, env, eager, django_capture_on_commit_callbacks, api):
    course, pool = _pool(scenario, env, django_capture_on_commit_callbacks)
    response = api.as_user(scenario.teacher).post(
        f"/api/v1/courses/{course.pk}/roster-import/",
        {"file": _upload(ROWS), "dry_run": "true"},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [a["student_number"] for a in body["added"]] == ["20269101", "20269102"]
    assert body["removed"] == [] and body["unchanged"] == 2
    assert body["pool"]["added"] == 2 and body["pool"]["seats_after"] == 4
    assert course.roster.count() == 2 and pool.seats.count() == 2
    assert not RosterEntry.objects.filter(student_number="20269101").exists()


def test_the_course_page_links_its_pool(scenario, env, eager, django_capture_on_commit_callbacks):
    course, pool = _pool(scenario, env, django_capture_on_commit_callbacks)
    page = _client(scenario.teacher).get(f"/tenants/courses/{course.pk}/").content.decode()
    assert f'href="/classroom/pools/{pool.pk}/"' in page

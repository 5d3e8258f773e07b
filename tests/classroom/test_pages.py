"""Pages and the pools API: what a student and a teacher see, bulk actions, query counts."""

import pytest
from django.test import Client

from compute.classroom import services
from compute.classroom.models import DesktopPool, Seat
from compute.models import Desktop
from tests.classroom.conftest import make_course
from tests.compute.conftest import desktop_of
from tests.querycount import assert_constant_queries, count_queries


@pytest.fixture
def pool(scenario, env, course, eager, django_capture_on_commit_callbacks):
    """A pool in use: made outside class (its desktops stopped), then powered on as before a class."""
    with django_capture_on_commit_callbacks(execute=True):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    assert set(Desktop.objects.filter(seat__pool=pool).values_list("state", flat=True)) == {Desktop.State.STOPPED}
    with django_capture_on_commit_callbacks(execute=True):
        services.pool_power(actor=scenario.teacher, pool=pool, verb="start")
    return pool


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_student_sees_their_own_desktop_by_course_with_the_next_class_and_nothing_of_others(scenario, pool):
    page = _client(scenario.student).get("/classroom/")
    html = page.content.decode()
    assert page.status_code == 200
    mine = Desktop.objects.get(owner=scenario.student)
    other = Desktop.objects.get(owner=scenario.student2)
    assert mine.name in html and other.name not in html
    assert "CS101" in html and 'data-testid="next-class"' in html
    # The scenario's endpoint is libvirt's test driver, which has no display: said, not offered.
    assert 'data-testid="console-unavailable"' in html and f"/classroom/desktops/{mine.pk}/console/" not in html
    assert _client(scenario.student).get(f"/classroom/desktops/{other.pk}/console/").status_code == 404
    assert _client(scenario.student).get(f"/classroom/pools/{pool.pk}/").status_code == 404


def test_a_student_can_restart_their_desktop_but_not_anothers(
    scenario, pool, eager, django_capture_on_commit_callbacks
):
    mine = Desktop.objects.get(owner=scenario.student)
    other = Desktop.objects.get(owner=scenario.student2)
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(scenario.student).post(f"/classroom/desktops/{mine.pk}/action/", {"action": "reboot"})
    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.state == Desktop.State.RUNNING
    assert (
        _client(scenario.student).post(f"/classroom/desktops/{other.pk}/action/", {"action": "reboot"}).status_code
        == 404
    )


def test_the_teacher_sees_progress_the_seat_grid_and_bulk_actions(scenario, pool):
    page = _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "2 / 2 就绪" in html
    assert html.count('data-testid="seat"') == 2
    assert "全部开机" in html and "全部重置" in html and "data-confirm" in html
    seats = _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/seats/")
    assert seats.status_code == 200 and 'id="seats"' in seats.content.decode()


def test_failures_are_listed_with_a_retry_button(scenario, pool):
    Desktop.objects.filter(owner=scenario.student).update(state=Desktop.State.ERROR, error_reason="磁盘已满")
    html = _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/").content.decode()
    assert "1 / 2 就绪" in html
    assert 'data-testid="failures"' in html and "磁盘已满" in html and 'value="retry"' in html


def test_the_pool_wizard_submits_a_request_and_explains_a_quota_shortfall(scenario, env, course):
    from tenants.models import ApprovalRequest
    from tenants.quotas import quota_set

    client = _client(scenario.teacher)
    form = client.get("/classroom/pools/new/")
    assert form.status_code == 200 and "新建桌面池" in form.content.decode()
    data = {
        "course": course.pk,
        "image_version": env.version.pk,
        "flavor": env.flavor.pk,
        "persistence": "reset_after_class",
        "lead_minutes": 15,
        "shutdown_after_minutes": 10,
    }
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 1})
    refused = client.post("/classroom/pools/new/", data, follow=True)
    assert "还差 1" in refused.content.decode()
    assert not ApprovalRequest.objects.exists()

    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 2})
    assert client.post("/classroom/pools/new/", data).status_code == 302
    request = ApprovalRequest.objects.get()
    assert request.kind == "course_desktops" and request.payload["persistence"] == "reset_after_class"


def test_bulk_stop_from_the_page_stops_every_seat(scenario, pool, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(scenario.teacher).post(f"/classroom/pools/{pool.pk}/action/", {"action": "stop"})
    assert response.status_code == 302
    assert set(Desktop.objects.filter(seat__pool=pool).values_list("state", flat=True)) == {"stopped"}


def test_the_pools_api_lists_pools_with_progress(api, scenario, pool):
    body = api.as_user(scenario.teacher).get("/api/v1/pools/").json()
    assert body["results"][0]["seats"] == 2 and body["results"][0]["ready"] == 2
    assert api.as_user(scenario.student).get("/api/v1/pools/").json()["results"] == []
    seats = api.as_user(scenario.teacher).get(f"/api/v1/pools/{pool.pk}/seats/").json()
    assert {s["student"] for s in seats["results"]} == {scenario.student.username, scenario.student2.username}


def test_the_pools_api_list_costs_the_same_queries_for_3_or_30_pools(api, scenario, env):
    from compute.models import ImageVersion

    version = ImageVersion.objects.get(pk=env.version.pk)
    counter = {"n": 0}

    def grow(n):
        for _ in range(n):
            counter["n"] += 1
            course = make_course(scenario, students=1, code=f"Q{counter['n']:03d}") if counter["n"] == 1 else None
            if course is None:
                from tenants.models import Course

                course = Course.objects.create(
                    tenant=scenario.tenant_a,
                    code=f"Q{counter['n']:03d}",
                    name="q",
                    teacher=scenario.teacher,
                    term_start="2026-09-01",
                    term_end="2027-01-15",
                )
            pool = DesktopPool.objects.create(
                course=course, tenant=scenario.tenant_a, name=course.code, image_version=version, flavor=env.flavor
            )
            desktop = desktop_of(scenario.tenant_a, owner=scenario.student, course=course)
            Seat.objects.create(pool=pool, student=scenario.student, desktop=desktop)

    client = api.as_user(scenario.teacher)
    client.get("/api/v1/pools/")  # warm the per-process caches (content types) first
    assert_constant_queries(lambda: client.get("/api/v1/pools/"), grow)


def test_the_pool_page_and_its_grid_cost_the_same_queries_for_3_or_30_seats(scenario, env):
    """Every kind of card is in the grid (running, stopped, failed, spare, another flavor or image, a
    console open): none of them reads the database once more per seat."""
    from django.utils import timezone

    from compute.classroom.models import ConsoleTicket
    from compute.models import Flavor, ImageVersion
    from tests import factories

    course = make_course(scenario, students=1, code="QC1")
    pool = DesktopPool.objects.create(
        course=course, tenant=scenario.tenant_a, name="QC1", image_version=env.version, flavor=env.flavor
    )
    older_flavor = Flavor.objects.create(name="q.old", vcpus=1, memory_mib=1024, disk_gib=10)
    newer_version = ImageVersion.objects.create(
        image=env.version.image, version=99, endpoint=env.endpoint, status=ImageVersion.Status.READY
    )
    states = [Desktop.State.RUNNING, Desktop.State.STOPPED, Desktop.State.ERROR, Desktop.State.PROVISIONING]
    made = {"n": 0}

    def grow(n):
        for _ in range(n):
            made["n"] += 1
            i = made["n"]
            student = None if i % 5 == 1 else factories.member(f"qc_stu{i:02d}", scenario.tenant_a, "student")
            desktop = desktop_of(scenario.tenant_a, env=env, owner=student, course=course, state=states[i % 4])
            if i % 3 == 0:
                Desktop.objects.filter(pk=desktop.pk).update(flavor=older_flavor, image_version=newer_version)
            if i % 4 == 0:
                now = timezone.now()
                ConsoleTicket.objects.create(
                    token_hash=f"{i:064d}", desktop=desktop, user=scenario.teacher, host="h", port=5900,
                    expires_at=now, used_at=now, seen_at=now,
                )  # fmt: skip
            Seat.objects.create(pool=pool, student=student, desktop=desktop)

    client = _client(scenario.teacher)
    client.get(f"/classroom/pools/{pool.pk}/")  # warm the per-process caches (content types) first
    made_before = made["n"]
    assert_constant_queries(lambda: client.get(f"/classroom/pools/{pool.pk}/seats/"), grow)
    assert made["n"] - made_before == 30
    few, _page = count_queries(lambda: client.get(f"/classroom/pools/{pool.pk}/"))
    grow(30)
    many, page = count_queries(lambda: client.get(f"/classroom/pools/{pool.pk}/"))
    assert page.content.decode().count('data-testid="seat"') == 60
    assert few == many, f"{few} queries for 30 seats but {many} for 60"


def test_the_console_page_loads_novnc_from_the_portal(scenario, pool):
    desktop = Desktop.objects.get(owner=scenario.student)
    html = _client(scenario.student).get(f"/classroom/desktops/{desktop.pk}/console/").content.decode()
    assert "classroom/console.js" in html and 'type="module"' in html
    assert "Ctrl+Alt+Del" in html and "发送到剪贴板" in html
    assert "<script>" not in html.replace("<script src", "")  # no inline script (CSP)


def test_my_desktops_shows_the_gpu_assigned(scenario, pool):
    Desktop.objects.filter(owner=scenario.student).update(gpus=1, gpu_device="0000:3b:00.0")
    html = _client(scenario.student).get("/classroom/").content.decode()
    assert 'data-testid="gpu"' in html and "0000:3b:00.0" in html
    grid = _client(scenario.teacher).get(f"/classroom/pools/{pool.pk}/").content.decode()
    assert "GPU 0000:3b:00.0" in grid


def test_a_student_whose_shutdown_was_put_off_is_warned_on_the_console_and_my_desktops(scenario, pool):
    import datetime

    from django.utils import timezone

    from compute.classroom.models import ClassSession

    mine = Desktop.objects.get(owner=scenario.student)
    other = Desktop.objects.get(owner=scenario.student2)
    notice = f"/classroom/desktops/{mine.pk}/shutdown-notice/"
    client = _client(scenario.student)
    assert 'data-testid="shutdown-notice"' not in client.get(notice).content.decode()

    ended = timezone.now() - datetime.timedelta(minutes=20)
    ClassSession.objects.create(
        pool=pool,
        class_time=pool.course.class_times.get(),
        date=timezone.localdate(ended),
        starts_at=ended - datetime.timedelta(minutes=100),
        ends_at=ended,
        state=ClassSession.State.SHUTTING_DOWN,
        warnings=1,
    )
    deadline = timezone.localtime(ended + datetime.timedelta(minutes=pool.shutdown_deadline_minutes))
    for url in ("/classroom/", f"/classroom/desktops/{mine.pk}/console/", notice):
        html = client.get(url).content.decode()
        assert 'data-testid="shutdown-notice"' in html and deadline.strftime("%H:%M") in html, url
    assert client.get(f"/classroom/desktops/{other.pk}/shutdown-notice/").status_code == 404


def test_a_roster_sync_from_the_page_says_what_changed_one_sentence_each(
    scenario, pool, eager, django_capture_on_commit_callbacks
):
    from tenants.models import RosterEntry
    from tests import factories

    client = _client(scenario.teacher)
    unchanged = client.post(f"/classroom/pools/{pool.pk}/action/", {"action": "sync"}, follow=True)
    assert "名单没有变化。" in unchanged.content.decode()

    newcomer = factories.member("a_newcomer", scenario.tenant_a, "student")
    RosterEntry.objects.filter(course=pool.course, user=scenario.student).delete()
    RosterEntry.objects.create(course=pool.course, user=newcomer, student_number="20269999")
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(f"/classroom/pools/{pool.pk}/action/", {"action": "sync"}, follow=True)
    html = page.content.decode()
    assert "1 台桌面已重置并移交给新学生。" in html
    assert "新学生分配到了新桌面" not in html and "桌面已回收" not in html  # no sentence for a zero


def test_the_pool_page_and_grid_read_their_pool_without_the_lists_seat_counts(scenario, pool):
    """The counts are the pool list's (three subqueries); the page counts its seats from those it reads."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _client(scenario.teacher)
    for path in (f"/classroom/pools/{pool.pk}/", f"/classroom/pools/{pool.pk}/seats/"):
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            page = client.get(path).content.decode()
        pool_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT `classroom_desktoppool`.`id`")]
        assert len(pool_reads) == 1 and "classroom_seat" not in pool_reads[0], path
        assert 'data-testid="progress-text"' in page
    from compute.classroom import selectors

    listed = selectors.pool_list_for(scenario.teacher).get(pk=pool.pk)
    assert listed.seat_count == Seat.objects.filter(pool=pool, state=Seat.State.ACTIVE).count() > 0

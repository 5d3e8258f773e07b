"""Issue #14.5: a revoked role ends what it granted, on every route.

The attack today: a teacher whose membership the tenant admin revoked (or whose account was
disabled) is still `course.teacher`, and that alone keeps the course, its roster import, its
pool's power and reset, the students' desktops and consoles within reach.
"""

import asyncio
import datetime

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from common.errors import Forbidden
from compute.classroom import consumers, services
from compute.classroom.models import ConsoleTicket
from compute.classroom.services import console
from tenants import permissions
from tenants.models import Course, Membership, User
from tenants.services import membership_revoke
from tests import factories
from tests.classroom.conftest import make_course
from tests.compute.conftest import desktop_of
from tests.harness.rfb import idle_rfb_server, run_coroutine


def _revoke_teacher(scenario):
    membership = Membership.objects.get(user=scenario.teacher, tenant=scenario.tenant_a, role="teacher")
    membership_revoke(actor=scenario.tenant_admin, membership=membership)
    return User.objects.get(pk=scenario.teacher.pk)  # fresh: no role cached from before


def test_a_revoked_teacher_loses_the_course_its_pool_desktops_and_consoles(
    scenario, env, eager, api, django_capture_on_commit_callbacks
):
    course = make_course(scenario)
    with django_capture_on_commit_callbacks(execute=True):
        pool = services.pool_create(actor=scenario.teacher, course=course, image_version=env.version, flavor=env.flavor)
    desktop = pool.seats.get(student=scenario.student).desktop
    assert api.as_user(scenario.teacher).get(f"/api/v1/courses/{course.pk}/").status_code == 200

    teacher = _revoke_teacher(scenario)
    client = api.as_user(teacher)

    assert client.get(f"/api/v1/courses/{course.pk}/").status_code == 404
    assert client.post(f"/api/v1/courses/{course.pk}/roster-import/", {}, format="json").status_code == 404
    assert client.post(f"/api/v1/pools/{pool.pk}/stop/").status_code == 404
    assert client.post(f"/api/v1/pools/{pool.pk}/reset/").status_code == 404
    assert client.get(f"/api/v1/desktops/{desktop.pk}/").status_code == 404
    assert client.post(f"/api/v1/desktops/{desktop.pk}/console/").status_code == 404
    assert not permissions.can_manage_course(teacher, course)
    with pytest.raises(Forbidden):
        services.pool_power(actor=teacher, pool=pool, verb="stop")
    assert not console.can_open_console(teacher, desktop)


def test_a_disabled_teachers_account_keeps_no_course(scenario):
    course = make_course(scenario)
    User.objects.filter(pk=scenario.teacher.pk).update(is_active=False)
    teacher = User.objects.get(pk=scenario.teacher.pk)

    assert not permissions.can_manage_course(teacher, course)
    assert not permissions.teaches(teacher, course)


@pytest.mark.django_db(transaction=True)
def test_an_open_console_closes_soon_after_the_teachers_role_is_revoked(scenario, monkeypatch):
    from portal.asgi import application

    monkeypatch.setattr(consumers, "SEEN_EVERY", 0.2)
    course = make_course(scenario)
    desktop = desktop_of(scenario.tenant_a, owner=scenario.student, course=course)

    async def run():
        server = await asyncio.start_server(idle_rfb_server, "127.0.0.1", 0)
        token = "r" * 43
        await database_sync_to_async(ConsoleTicket.objects.create)(
            token_hash=console._hash(token),  # noqa: SLF001
            desktop=desktop,
            user=scenario.teacher,
            host="127.0.0.1",
            port=server.sockets[0].getsockname()[1],
            expires_at=timezone.now() + datetime.timedelta(seconds=60),
        )
        scope = {
            "type": "websocket",
            "path": f"/ws/console/{token}/",
            "query_string": b"",
            "headers": [(b"origin", b"http://127.0.0.1:8000")],
            "subprotocols": ["binary"],
            "client": ("127.0.0.1", 50000),
        }
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "websocket.connect"})
        assert (await communicator.receive_output(5))["type"] == "websocket.accept"
        assert (await communicator.receive_output(5))["bytes"] == b"RFB 003.008\n"
        await database_sync_to_async(_revoke_teacher)(scenario)
        closed = await communicator.receive_output(5)  # a heartbeat or two later, not a minute
        await communicator.send_input({"type": "websocket.disconnect", "code": 4403})
        await communicator.wait(5)
        server.close()
        return closed

    closed = run_coroutine(run())

    assert closed["type"] == "websocket.close"
    assert ConsoleTicket.objects.get().closed_at is not None


def test_a_course_without_teacher_is_shown_to_the_tenant_admin_with_one_click_reassignment(scenario):
    course = make_course(scenario)
    successor = factories.member("a_teacher2", scenario.tenant_a, "teacher")
    _revoke_teacher(scenario)
    client = Client()
    client.force_login(scenario.tenant_admin)

    page = client.get("/tenants/courses/").content.decode()
    assert 'data-testid="course-without-teacher"' in page
    assert 'data-testid="course-reassign"' in page and successor.username in page

    response = client.post(f"/tenants/courses/{course.pk}/reassign/", {"teacher": successor.username})

    assert response.status_code == 302
    assert Course.objects.get(pk=course.pk).teacher == successor
    assert 'data-testid="course-without-teacher"' not in client.get("/tenants/courses/").content.decode()

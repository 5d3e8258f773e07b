"""The demo's journey as the auditor reads it: a teacher asks for course desktops, the
college admin approves through the API, the desktops come up on the real libvirtd, and a student
opens a console through the portal's WebSocket proxy. Every step is one audit event with its
actor, role and source address, in order, and the chain over them verifies."""

import time

import pytest
from websockify.websocket import WebSocket, WebSocketWantReadError

from audit import context as audit_context
from audit.models import AuditEvent
from audit.services import chain_verify
from compute.classroom.services import course_request_submit
from compute.models import Desktop
from tenants.models import ApprovalRequest, ClassTime, Course, RequestKind, RosterEntry
from tests import factories

TEACHER_IP, ADMIN_IP = "10.8.0.11", "10.8.0.12"


@pytest.fixture
def fulfiller():
    """Registered at start-up; another test in this process may have replaced it since."""
    from compute.classroom.services import fulfil_course_desktops
    from tenants.hooks import register_fulfiller

    register_fulfiller(RequestKind.COURSE_DESKTOPS, fulfil_course_desktops)


def _course(scenario) -> Course:
    import datetime

    course = factories.cs101(scenario)
    RosterEntry.objects.create(course=course, user=scenario.student, student_number="20260001")
    ClassTime.objects.create(course=course, weekday=1, start_time=datetime.time(10, 0), end_time=datetime.time(11, 40))
    return course


def _read_banner(ws: WebSocket) -> bytes:
    data, deadline = b"", time.monotonic() + 10
    while len(data) < 12 and time.monotonic() < deadline:
        try:
            chunk = ws.recv()
        except WebSocketWantReadError:
            continue
        if chunk is None:
            break
        data += chunk
    return data


@pytest.mark.libvirt
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_teacher_to_console_journey_is_in_the_audit_log_with_actors_and_addresses(
    scenario, qemu_env, asgi_server, eager, fulfiller, api
):
    course = _course(scenario)

    # The wizard page calls this service; the teacher's browser address reaches the audit writer
    # the way the middleware passes it (the wizard's own page tests are in tests/tenants).
    token = audit_context.activate(audit_context.AuditContext(source_ip=TEACHER_IP, user_agent="TeacherBrowser/1.0"))
    try:
        course_request_submit(
            actor=scenario.teacher, course=course, image_version=qemu_env.version, flavor=qemu_env.flavor
        )
    finally:
        audit_context.deactivate(token)
    request = ApprovalRequest.objects.get(course=course)

    admin = api.as_user(scenario.tenant_admin)
    response = admin.post(f"/api/v1/requests/{request.pk}/approve/", {"comment": "ok"}, REMOTE_ADDR=ADMIN_IP)
    assert response.status_code == 200, response.content
    desktop = Desktop.objects.get(course=course, owner=scenario.student)
    # Out of class time the pool's desktops are made stopped (#13.11): the student starts theirs.
    assert desktop.state == Desktop.State.STOPPED, desktop.error_reason
    started = api.as_user(scenario.student).post(f"/api/v1/desktops/{desktop.pk}/start/", REMOTE_ADDR="10.8.0.13")
    assert started.status_code == 202, started.content
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING, desktop.error_reason

    response = api.as_user(scenario.student).post(f"/api/v1/desktops/{desktop.pk}/console/", REMOTE_ADDR="10.8.0.13")
    assert response.status_code == 201, response.content
    ws = WebSocket()
    ws.connect(  # a browser sends the page's Origin; the portal refuses any other (#14.4)
        asgi_server.replace("http://", "ws://") + response.json()["websocket_url"],
        origin=asgi_server,
        protocols=["binary"],
    )
    assert _read_banner(ws) == b"RFB 003.008\n"
    ws.close()
    for _ in range(50):  # the proxy records the closing once the socket is gone
        if AuditEvent.objects.filter(action="console.closed").exists():
            break
        time.sleep(0.1)

    trail = list(AuditEvent.objects.order_by("pk"))

    def first(action):
        found = [event for event in trail if event.action == action]
        assert found, f"no {action} event in {[e.action for e in trail]}"
        return found[0]

    submitted, approved = first("request.submitted"), first("request.approved")
    created, opened, closed = first("desktop.created"), first("console.opened"), first("console.closed")
    assert trail.index(submitted) < trail.index(approved) < trail.index(created) < trail.index(opened)
    assert trail.index(opened) < trail.index(closed)

    assert (submitted.actor_username, submitted.source_ip) == ("a_teacher", TEACHER_IP)
    assert submitted.actor_role and submitted.user_agent == "TeacherBrowser/1.0"
    assert (approved.actor_username, approved.source_ip) == ("a_admin", ADMIN_IP)
    assert created.object_id == str(desktop.pk) and created.tenant_slug == "cs"
    # The console is opened by the student's browser over the WebSocket: its peer address, here loopback.
    assert (opened.actor_username, opened.source_ip) == (scenario.student.username, "127.0.0.1")
    assert opened.request_id and closed.request_id == opened.request_id
    assert chain_verify(source="test").ok

"""The browser console: tickets from the API, and a real WebSocket through the portal's proxy
(uvicorn on a loopback port) to QEMU's VNC server on the real libvirtd."""

import datetime
import time

import pytest
from django.utils import timezone
from websockify.websocket import WebSocket, WebSocketWantReadError

from audit.models import AuditEvent
from common.errors import ErrorCode as CommonErrorCode
from compute import services as compute_services
from compute.classroom.errors import ErrorCode
from compute.classroom.models import ConsoleTicket
from compute.models import Desktop
from tests.classroom.conftest import make_course
from tests.compute.conftest import desktop_of
from tests.harness.rfb import idle_rfb_server, run_coroutine

# --- the API, without a hypervisor ---------------------------------------------------------------


def test_a_student_cannot_ask_for_another_students_console(api, scenario):
    other = desktop_of(scenario.tenant_a, owner=scenario.student2)
    response = api.as_user(scenario.student).post(f"/api/v1/desktops/{other.pk}/console/")
    assert response.status_code == 404
    assert response.json()["code"] == CommonErrorCode.NOT_FOUND
    assert not ConsoleTicket.objects.exists()


def test_a_stopped_desktop_says_so_and_offers_to_start_it(api, scenario):
    desktop = desktop_of(scenario.tenant_a, owner=scenario.student, state=Desktop.State.STOPPED)
    response = api.as_user(scenario.student).post(f"/api/v1/desktops/{desktop.pk}/console/")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == ErrorCode.DESKTOP_STOPPED
    assert "开机" in body["message"]
    assert body["detail"]["start_url"] == f"/api/v1/desktops/{desktop.pk}/start/"


@pytest.fixture
def vcenter_desktop(scenario):
    """A desktop row for a VM of the shared vCenter simulator (read only: nothing is changed there)."""
    import os

    from compute.hypervisor import driver_for

    url = os.environ.get("VCSIM_URL")
    if not url:
        pytest.fail("VCSIM_URL is not set (make test and /tmp/devtest.sh start the simulator)")
    endpoint = compute_services.endpoint_register(
        actor=scenario.sysadmin, name="vc-console", kind="vcenter", url=url, username="u", password="p"
    )
    vm = next(v for v in driver_for(endpoint).list_vms() if v.power_state == "running")
    desktop = desktop_of(scenario.tenant_a, owner=scenario.student)
    Desktop.objects.filter(pk=desktop.pk).update(endpoint=endpoint, vm_name=vm.name)
    desktop.refresh_from_db()
    return desktop


@pytest.mark.vcsim
def test_a_vcenter_desktop_without_webmks_gets_a_clear_409(api, scenario, vcenter_desktop):
    response = api.as_user(scenario.student).post(f"/api/v1/desktops/{vcenter_desktop.pk}/console/")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == ErrorCode.CONSOLE_UNSUPPORTED
    assert "vCenter" in body["message"] and "vSphere" in body["message"]
    # The driver did ask the simulator for a WebMKS ticket (AcquireTicket), which it lacks.
    assert body["detail"]["endpoint_kind"] == "vcenter" and "WebMKS" in body["detail"]["reason"]
    assert not ConsoleTicket.objects.exists()
    assert not AuditEvent.objects.filter(action="console.opened").exists()


def test_a_vcenter_ticket_is_handed_out_as_webmks_and_audited(api, scenario, monkeypatch):
    """Where the endpoint does issue WebMKS tickets (a real vCenter; not the simulator), the API
    returns it as such. The driver is replaced here: this is the layer above it."""
    from compute.drivers.base import ConsoleAddress
    from compute.models import Endpoint

    desktop = desktop_of(scenario.tenant_a, owner=scenario.student)
    Endpoint.objects.filter(pk=desktop.endpoint_id).update(kind="vcenter")

    class WebMksDriver:
        def console_address(self, name):
            assert name == desktop.vm_name
            return ConsoleAddress(host="esxi1", port=443, ticket="vmw-t", url="wss://esxi1:443/ticket/vmw-t")

    monkeypatch.setattr("compute.hypervisor.driver_for", lambda endpoint: WebMksDriver())
    response = api.as_user(scenario.student).post(f"/api/v1/desktops/{desktop.pk}/console/")

    assert response.status_code == 201
    body = response.json()
    assert body["protocol"] == "webmks" and body["websocket_url"] == "wss://esxi1:443/ticket/vmw-t"
    assert body["ticket"] == "vmw-t" and body["page_url"] == f"/classroom/desktops/{desktop.pk}/console/"
    assert not ConsoleTicket.objects.exists()  # the portal's proxy is not in the path
    assert AuditEvent.objects.filter(action="console.opened", detail__protocol="webmks").exists()


def test_a_tenant_b_user_gets_a_404(api, scenario):
    desktop = desktop_of(scenario.tenant_a, owner=scenario.student)
    response = api.as_user(scenario.stranger).post(f"/api/v1/desktops/{desktop.pk}/console/")
    assert response.status_code == 404


# --- through the proxy, to QEMU ---------------------------------------------------------------


def _ws(base: str, path: str) -> WebSocket:
    ws = WebSocket()
    # A browser sends the page's Origin; the portal refuses a handshake from any other (portal/asgi.py).
    ws.connect(base.replace("http://", "ws://") + path, origin=base, protocols=["binary"])
    return ws


def _read(ws: WebSocket, size: int) -> bytes:
    """At least ``size`` bytes (or what came before the close); a partial frame is waited for."""
    data = b""
    deadline = time.monotonic() + 10
    while len(data) < size and time.monotonic() < deadline:
        try:
            chunk = ws.recv()
        except WebSocketWantReadError:
            continue
        if chunk is None:
            break
        data += chunk
    return data


def _banner(ws: WebSocket) -> bytes:
    return _read(ws, 12)


@pytest.fixture
def running(scenario, qemu_env, eager):
    """A course desktop of student on QEMU, provisioned and running (tasks in-process)."""
    course = make_course(scenario, students=2)
    desktop = compute_services.desktop_create(
        actor=scenario.teacher,
        tenant=scenario.tenant_a,
        image_version=qemu_env.version,
        flavor=qemu_env.flavor,
        owner=scenario.student,
        course=course,
    )
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING, desktop.error_reason
    return desktop


@pytest.mark.libvirt
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_fresh_ticket_reads_qemus_rfb_banner_through_the_proxy_once(api, scenario, running, asgi_server):
    response = api.as_user(scenario.student).post(f"/api/v1/desktops/{running.pk}/console/")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"ticket", "expires_at", "websocket_url", "protocol", "page_url"}
    assert body["protocol"] == "rfb" and body["websocket_url"].startswith("/ws/console/")
    assert len(body["ticket"]) >= 40 and body["ticket"] not in body["page_url"]
    assert str(running.vnc_port) not in body["websocket_url"]  # the VNC port never reaches the browser

    ws = _ws(asgi_server, body["websocket_url"])
    assert _banner(ws) == b"RFB 003.008\n"
    ws.send(b"RFB 003.008\n")  # the proxy carries the browser's bytes too: QEMU answers security types
    assert _read(ws, 1)
    ws.close()

    with pytest.raises(Exception):  # noqa: B017, PT011 - the handshake is refused: used once already
        _ws(asgi_server, body["websocket_url"])
    ticket = ConsoleTicket.objects.get()
    assert ticket.used_at is not None
    opened = AuditEvent.objects.filter(action="console.opened", object_id=str(running.pk))
    assert opened.count() == 1 and opened.get().actor_username == scenario.student.username
    for _ in range(50):  # the proxy records the closing once the socket is gone
        if AuditEvent.objects.filter(action="console.closed", object_id=str(running.pk)).exists():
            break
        time.sleep(0.1)
    assert AuditEvent.objects.filter(action="console.closed", object_id=str(running.pk)).exists()


@pytest.mark.libvirt
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_expired_or_unknown_ticket_is_refused(api, scenario, running, asgi_server):
    body = api.as_user(scenario.student).post(f"/api/v1/desktops/{running.pk}/console/").json()
    ConsoleTicket.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    with pytest.raises(Exception):  # noqa: B017, PT011
        _ws(asgi_server, body["websocket_url"])
    with pytest.raises(Exception):  # noqa: B017, PT011
        _ws(asgi_server, "/ws/console/not-a-ticket-at-all-0123456789abcdef/")
    assert not AuditEvent.objects.filter(action="console.opened").exists()


@pytest.mark.libvirt
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_teacher_opens_a_students_console_but_another_student_cannot(api, scenario, running, asgi_server):
    refused = api.as_user(scenario.student2).post(f"/api/v1/desktops/{running.pk}/console/")
    assert refused.status_code == 404
    body = api.as_user(scenario.teacher).post(f"/api/v1/desktops/{running.pk}/console/").json()
    ws = _ws(asgi_server, body["websocket_url"])
    assert _banner(ws) == b"RFB 003.008\n"
    ws.close()


@pytest.mark.libvirt
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_ticket_of_a_desktop_handed_to_another_student_is_refused(api, scenario, running, asgi_server):
    body = api.as_user(scenario.student).post(f"/api/v1/desktops/{running.pk}/console/").json()
    Desktop.objects.filter(pk=running.pk).update(owner=scenario.student2, course=None)
    with pytest.raises(Exception):  # noqa: B017, PT011
        _ws(asgi_server, body["websocket_url"])


@pytest.mark.django_db(transaction=True)
def test_an_idle_console_counts_as_connected_until_it_closes(scenario, monkeypatch):
    """The proxy marks an open console as in use even when the screen sends nothing, so the
    schedule does not power off a desktop a student is sitting at; closing is recorded."""
    import asyncio

    from asgiref.testing import ApplicationCommunicator

    from compute.classroom import consumers, services
    from compute.classroom.services import console
    from portal.asgi import application

    monkeypatch.setattr(consumers, "SEEN_EVERY", 0.2)
    desktop = desktop_of(scenario.tenant_a, owner=scenario.student)

    async def scenario_run():
        server = await asyncio.start_server(idle_rfb_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        token = "t" * 43
        ticket = await database_sync_to_async(ConsoleTicket.objects.create)(
            token_hash=console._hash(token),  # noqa: SLF001
            desktop=desktop,
            user=scenario.student,
            host="127.0.0.1",
            port=port,
            expires_at=timezone.now() + datetime.timedelta(seconds=60),
        )
        # channels.testing needs daphne; asgiref's communicator speaks the same ASGI messages.
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
        accepted = await communicator.receive_output(5)
        assert accepted["type"] == "websocket.accept" and accepted["subprotocol"] == "binary"
        assert (await communicator.receive_output(5))["bytes"] == b"RFB 003.008\n"
        await asyncio.sleep(0.7)
        ids = await database_sync_to_async(services.connected_desktop_ids)([desktop.pk])
        seen = (await database_sync_to_async(ConsoleTicket.objects.get)(pk=ticket.pk)).seen_at
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(5)
        server.close()
        return ticket, ids, seen

    from channels.db import database_sync_to_async

    ticket, ids, seen = run_coroutine(scenario_run())
    ticket.refresh_from_db()
    assert ids == {desktop.pk}
    assert seen > ticket.used_at
    assert ticket.closed_at is not None
    assert services.connected_desktop_ids([desktop.pk]) == set()
    assert AuditEvent.objects.filter(action="console.closed", object_id=str(desktop.pk)).exists()

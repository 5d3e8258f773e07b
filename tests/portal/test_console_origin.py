"""Issue #14.4: the console WebSocket accepts only the portal's own Origin.

The attack: a page on another site, opened by a student who holds a console ticket (or has
it leaked to it), opens the WebSocket itself and reads the desktop's screen.
"""

import asyncio
import datetime

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.utils import timezone

from compute.classroom.models import ConsoleTicket
from compute.classroom.services import console
from tests.compute.conftest import desktop_of
from tests.harness.rfb import idle_rfb_server, run_coroutine


def _open(scenario, headers):
    """Open the proxy with a valid ticket to a VNC-speaking server; what the proxy answered, and the ticket."""
    from portal.asgi import application

    desktop = desktop_of(scenario.tenant_a, owner=scenario.student)

    async def run():
        server = await asyncio.start_server(idle_rfb_server, "127.0.0.1", 0)
        token = "o" * 43
        ticket = await database_sync_to_async(ConsoleTicket.objects.create)(
            token_hash=console._hash(token),  # noqa: SLF001
            desktop=desktop,
            user=scenario.student,
            host="127.0.0.1",
            port=server.sockets[0].getsockname()[1],
            expires_at=timezone.now() + datetime.timedelta(seconds=60),
        )
        scope = {
            "type": "websocket",
            "path": f"/ws/console/{token}/",
            "query_string": b"",
            "headers": headers,
            "subprotocols": ["binary"],
            "client": ("127.0.0.1", 50000),
        }
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "websocket.connect"})
        answer = await communicator.receive_output(5)
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(5)
        server.close()
        return answer, ticket

    answer, ticket = run_coroutine(run())
    ticket.refresh_from_db()
    return answer, ticket


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "headers",
    [[(b"origin", b"https://evil.example.com")], [(b"origin", b"null")], []],
    ids=["another-site", "null-origin", "no-origin"],
)
def test_a_console_websocket_from_another_origin_is_refused_and_the_ticket_stays_unused(scenario, headers):
    answer, ticket = _open(scenario, headers)

    assert answer["type"] == "websocket.close"
    assert ticket.used_at is None


@pytest.mark.django_db(transaction=True)
def test_a_console_websocket_from_the_portals_own_origin_is_accepted(scenario):
    answer, ticket = _open(scenario, [(b"origin", b"http://127.0.0.1:8000")])

    assert answer["type"] == "websocket.accept"
    assert ticket.used_at is not None

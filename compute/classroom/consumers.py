"""The browser console's WebSocket proxy: a single-use ticket in, the desktop's VNC (RFB) stream out.

The browser never learns the VNC host, port or password: the ticket (issued by
``POST /api/v1/desktops/{id}/console/`` after a permission check) is resolved here, on the
server, to the desktop's host's management address; the proxy authenticates to QEMU with the
ticket's one-time VNC password (compute.console_rfb), offers the browser RFB without
authentication, and then relays bytes both ways.
"""

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from audit import context as audit_context
from compute import console_rfb as rfb
from compute.classroom import services
from compute.models import secret_decrypt

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5
# Seconds between "still connected" marks (services.CONSOLE_SEEN_SECONDS is 90); each also checks that
# the person may still see the desktop, so a revoked role closes an open console within a minute.
SEEN_EVERY = 20
CHUNK = 64 * 1024


class ConsoleConsumer(AsyncWebsocketConsumer):
    ticket_id = None
    reader = writer = pump = upstream = heartbeat = from_browser = None

    def _client(self) -> str:
        client = self.scope.get("client") or ("", 0)
        return str(client[0] or "")

    async def connect(self):
        # The connection is its own task: the opening and closing events carry its address.
        audit_context.activate(audit_context.from_asgi_scope(self.scope))
        token = self.scope["url_route"]["kwargs"].get("ticket", "")
        try:
            ticket = await database_sync_to_async(services.console_ticket_redeem)(token=token, client=self._client())
        except services.TicketRefused as exc:
            log.info("console ticket refused: %s", exc)
            await self.close(code=4403)
            return
        self.ticket_id = ticket.pk
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(ticket.host, ticket.port), timeout=CONNECT_TIMEOUT
            )
            # The proxy authenticates to QEMU with the ticket's one-time password; the browser never sees it.
            password = secret_decrypt(ticket.vnc_password_encrypted)
            await asyncio.wait_for(rfb.server_authenticate(self.reader, self.writer, password), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, rfb.RfbError) as exc:
            log.warning("console %s: cannot open VNC at %s:%s: %s", ticket.pk, ticket.host, ticket.port, exc)
            await database_sync_to_async(services.console_close)(ticket_id=self.ticket_id, reason="unreachable")
            await self.close(code=4502)
            return
        offered = self.scope.get("subprotocols") or []
        await self.accept(subprotocol="binary" if "binary" in offered else None)
        self.from_browser = asyncio.StreamReader()
        self.pump = asyncio.create_task(self._vnc_to_browser())
        self.upstream = asyncio.create_task(self._browser_to_vnc())
        self.heartbeat = asyncio.create_task(self._still_connected())

    async def _browser_to_vnc(self):
        """The browser's RFB handshake (no authentication: the ticket was its key), then its bytes to QEMU."""

        async def send(data: bytes) -> None:
            await self.send(bytes_data=data)

        try:
            await rfb.browser_handshake(self.from_browser, send)
            while data := await self.from_browser.read(CHUNK):
                self.writer.write(data)
                await self.writer.drain()
        except (OSError, rfb.RfbError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await self.close()

    async def _still_connected(self):
        """Mark the console as in use while the socket is open, even when the screen is idle: the
        schedule does not shut down a desktop someone is connected to."""
        with contextlib.suppress(asyncio.CancelledError):
            while self.ticket_id is not None:
                await asyncio.sleep(SEEN_EVERY)
                if self.ticket_id is not None:
                    allowed = await database_sync_to_async(services.console_seen)(ticket_id=self.ticket_id)
                    if not allowed:
                        log.info("console %s: access revoked, closing", self.ticket_id)
                        ticket_id, self.ticket_id = self.ticket_id, None
                        await database_sync_to_async(services.console_close)(
                            ticket_id=ticket_id, reason="access revoked"
                        )
                        await self.close(code=4403)
                        return

    async def _vnc_to_browser(self):
        try:
            while True:
                data = await self.reader.read(CHUNK)
                if not data:
                    break
                await self.send(bytes_data=data)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await self.close()

    async def receive(self, text_data=None, bytes_data=None):
        if self.from_browser is None:
            return
        self.from_browser.feed_data(bytes_data if bytes_data is not None else (text_data or "").encode())

    async def disconnect(self, code):
        if self.from_browser is not None and not self.from_browser.at_eof():
            self.from_browser.feed_eof()
        for task in (self.pump, self.upstream, self.heartbeat):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.writer = None
        if self.ticket_id is not None:
            ticket_id, self.ticket_id = self.ticket_id, None
            await database_sync_to_async(services.console_close)(ticket_id=ticket_id, reason=f"closed {code}")

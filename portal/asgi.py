"""ASGI entry point: HTTP through Django, WebSockets (the browser console) through Channels.

A WebSocket handshake carries the page's Origin, which a browser always sends: only the portal's
own hosts (ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS) may open one, so another site cannot open a console
with a student's ticket in hand. A handshake without an Origin is refused too.

Database connections are never kept between requests here, whatever CONN_MAX_AGE says (it still
applies to the Celery workers and to the WSGI entry point): under ASGI, Django runs each request's
sync code on a thread of its own, and a connection belongs to its thread, so a "persistent"
connection is never reused: it stays open after its request, unreachable, until the garbage
collector happens to free it. Measured under uvicorn with CONN_MAX_AGE=60: 60 concurrent requests
left 60 connections open 40 s later, so a class start (hundreds of students' requests in a minute)
would pass MariaDB's default max_connections (151). Django's documentation says as much: disable
persistent connections under ASGI. Each request opens and closes its own connection instead (a few
milliseconds on loopback).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi = get_asgi_application()

from django.conf import settings  # noqa: E402

for database in settings.DATABASES.values():
    database["CONN_MAX_AGE"] = 0

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402

from portal.routing import websocket_urlpatterns  # noqa: E402


def portal_origins() -> list[str]:
    return [*settings.ALLOWED_HOSTS, *settings.CSRF_TRUSTED_ORIGINS]


application = ProtocolTypeRouter(
    {"http": django_asgi, "websocket": OriginValidator(URLRouter(websocket_urlpatterns), portal_origins())}
)

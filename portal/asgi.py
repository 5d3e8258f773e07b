"""ASGI entry point: HTTP through Django, WebSockets (the browser console) through Channels.

A WebSocket handshake carries the page's Origin, which a browser always sends: only the portal's
own hosts (ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS) may open one, so another site cannot open a console
with a student's ticket in hand. A handshake without an Origin is refused too.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from portal.routing import websocket_urlpatterns  # noqa: E402


def portal_origins() -> list[str]:
    return [*settings.ALLOWED_HOSTS, *settings.CSRF_TRUSTED_ORIGINS]


application = ProtocolTypeRouter(
    {"http": django_asgi, "websocket": OriginValidator(URLRouter(websocket_urlpatterns), portal_origins())}
)

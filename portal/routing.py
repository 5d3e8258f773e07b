"""WebSocket routes. The console proxy of compute plugs in here."""

from django.urls import path

from compute.classroom.consumers import ConsoleConsumer

websocket_urlpatterns: list = [
    path("ws/console/<str:ticket>/", ConsoleConsumer.as_asgi(), name="console-ws"),
]

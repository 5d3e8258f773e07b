"""WebSocket routes. The console proxy of compute plugs in here."""

websocket_urlpatterns: list = []

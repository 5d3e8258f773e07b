"""Who is acting, from where: set per request by the middleware, per task by the task runner.

Services never take a request; the audit writer reads the source IP, user agent and
request id from here.
"""

import contextvars
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditContext:
    source_ip: str = ""
    user_agent: str = ""
    request_id: str = ""


_EMPTY = AuditContext()
_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "audit_context",
    default=_EMPTY,  # noqa: B039 - frozen dataclass, immutable
)


def current() -> AuditContext:
    return _current.get()


def activate(ctx: AuditContext) -> contextvars.Token:
    return _current.set(ctx)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


def from_asgi_scope(scope: dict) -> AuditContext:
    """The context of a WebSocket connection (the console proxy), from its ASGI scope.

    ``scope["client"]`` is what REMOTE_ADDR is for a request: the peer address, or the
    forwarded one when the server trusts the proxy in front of it (uvicorn --proxy-headers).
    One request id per connection ties its opening and closing events together.
    """
    client = scope.get("client") or ("", 0)
    headers = dict(scope.get("headers") or [])
    return AuditContext(
        source_ip=str(client[0] or ""),
        user_agent=headers.get(b"user-agent", b"").decode("latin-1"),
        request_id=uuid.uuid4().hex,
    )

"""Who is acting, from where: set per request by the middleware, per task by the task runner.

Services never take a request; the audit writer reads the source IP, user agent and
request id from here.
"""

import contextvars
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

"""Hooks higher apps register at start-up, so audit imports nothing of theirs."""

from collections.abc import Callable

# (user) -> (role, tenant_slug): how to describe an actor at the time of the event.
_actor_describer: Callable[[object], tuple[str, str]] | None = None


def register_actor_describer(fn: Callable[[object], tuple[str, str]]) -> None:
    global _actor_describer
    _actor_describer = fn


def describe_actor(user) -> tuple[str, str]:
    if user is None or _actor_describer is None:
        return "", ""
    return _actor_describer(user)

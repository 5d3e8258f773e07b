"""Hooks higher apps register at start-up, so audit imports nothing of theirs.

Every hook fails closed when nobody registered it: no roles, no tenants in scope.
"""

from collections.abc import Callable

# (user) -> (role, tenant_slug): how to describe an actor at the time of the event.
_actor_describer: Callable[[object], tuple[str, str]] | None = None
# (user) -> set of role names (tenant roles and the platform role).
_role_resolver: Callable[[object], set[str]] | None = None
# (user) -> None for the whole platform, or the set of tenant slugs whose events they may read.
_audit_scope: Callable[[object], set[str] | None] | None = None
# () -> queryset/iterable of users who must use a second factor.
_privileged_users: Callable[[], object] | None = None

PLATFORM = None  # what an audit scope returns for "every tenant and the platform's own events"


def register_actor_describer(fn: Callable[[object], tuple[str, str]]) -> None:
    global _actor_describer
    _actor_describer = fn


def describe_actor(user) -> tuple[str, str]:
    if user is None or _actor_describer is None or not getattr(user, "pk", None):
        return "", ""
    return _actor_describer(user)


def register_role_resolver(fn: Callable[[object], set[str]]) -> None:
    global _role_resolver
    _role_resolver = fn


def roles_of(user) -> set[str]:
    if _role_resolver is None or not getattr(user, "is_authenticated", False):
        return set()
    return set(_role_resolver(user))


def register_audit_scope(fn: Callable[[object], set[str] | None]) -> None:
    global _audit_scope
    _audit_scope = fn


def audit_scope(user) -> set[str] | None:
    """None = the whole platform; a set = those tenant slugs only; empty set = nothing."""
    if _audit_scope is None or not getattr(user, "is_authenticated", False):
        return set()
    return _audit_scope(user)


def register_privileged_users(fn: Callable[[], object]) -> None:
    global _privileged_users
    _privileged_users = fn


def privileged_users():
    return list(_privileged_users()) if _privileged_users else []

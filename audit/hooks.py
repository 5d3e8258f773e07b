"""Hooks higher apps register at start-up, so audit imports nothing of theirs.

Every hook fails closed when nobody registered it: no roles, no tenants in scope.
"""

from collections.abc import Callable

from common.hooks import Registry

# One function per role, registered under these names:
# - "actor_describer": (user) -> (role, tenant_slug), how to describe an actor at the time of the event;
# - "role_resolver": (user) -> set of role names (tenant roles and the platform role);
# - "audit_scope": (user) -> None for the whole platform, or the set of tenant slugs whose events they may read;
# - "privileged_users": () -> queryset/iterable of users who must use a second factor.
_hooks = Registry()

PLATFORM = None  # what an audit scope returns for "every tenant and the platform's own events"


def register_actor_describer(fn: Callable[[object], tuple[str, str]]) -> None:
    _hooks.register(fn, key="actor_describer")


def describe_actor(user) -> tuple[str, str]:
    describer = _hooks.get("actor_describer")
    if user is None or describer is None or not getattr(user, "pk", None):
        return "", ""
    return describer(user)


def register_role_resolver(fn: Callable[[object], set[str]]) -> None:
    _hooks.register(fn, key="role_resolver")


def roles_of(user) -> set[str]:
    resolver = _hooks.get("role_resolver")
    if resolver is None or not getattr(user, "is_authenticated", False):
        return set()
    return set(resolver(user))


def register_audit_scope(fn: Callable[[object], set[str] | None]) -> None:
    _hooks.register(fn, key="audit_scope")


def audit_scope(user) -> set[str] | None:
    """None = the whole platform; a set = those tenant slugs only; empty set = nothing."""
    scope = _hooks.get("audit_scope")
    if scope is None or not getattr(user, "is_authenticated", False):
        return set()
    return scope(user)


def register_role_labels(labels: dict[str, str]) -> None:
    """Role code -> its label in the reader's language (lazy strings), for the log's 角色 column."""
    _hooks.register(lambda: labels, key="role_labels")


def role_label(code: str) -> str:
    labels = _hooks.get("role_labels")
    return str(labels().get(code, code)) if labels and code else code


def register_privileged_users(fn: Callable[[], object]) -> None:
    _hooks.register(fn, key="privileged_users")


def privileged_users():
    users = _hooks.get("privileged_users")
    return list(users()) if users else []

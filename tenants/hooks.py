"""Fulfilment hooks: higher apps (compute) register what to do when a request is approved.

tenants never imports compute. At start-up compute calls, for each kind it fulfils:

    register_fulfiller(RequestKind.COURSE_DESKTOPS, fulfil_course_desktops)

The function receives the approved ApprovalRequest (its `payload`, its amounts and its
`reservation`, already held against the quotas) after the approving transaction has
committed. It should start the work (a Celery task) and later call
`tenants.services.request_fulfil` or `request_fail`. Until a kind has a fulfiller, its
approved requests simply stay approved.
"""

from collections.abc import Callable

from common.hooks import Registry

_fulfillers = Registry()  # by request kind


def register_fulfiller(kind: str, fn: Callable) -> None:
    _fulfillers.register(fn, key=str(kind))


def unregister_fulfiller(kind: str) -> None:
    _fulfillers.unregister(str(kind))


def fulfiller_for(kind: str) -> Callable | None:
    return _fulfillers.get(str(kind))


# --- Rosters ------------------------------------------------------------------------------------
# The classroom keeps a course's desktop pool in step with its roster. It registers, at start-up:
#   roster_changed(*, course, actor) -> dict | None: called inside the transaction that changed the
#       roster (an import, a removal), after the change; what it did (seats added, handed over...).
#   roster_preview(*, course, keep_user_ids, new_accounts) -> dict | None: what it would do if the
#       roster became ``keep_user_ids`` plus ``new_accounts`` accounts not made yet; reads only.
#   course_links(*, course, user) -> list[tuple[str, str]]: (label, URL) of the course's pages it owns.
_roster_hooks = Registry()  # by role: "changed", "preview", "links"


def register_roster_hooks(*, changed: Callable, preview: Callable, links: Callable) -> None:
    _roster_hooks.register(changed, key="changed")
    _roster_hooks.register(preview, key="preview")
    _roster_hooks.register(links, key="links")


def roster_changed(*, course, actor) -> dict | None:
    hook = _roster_hooks.get("changed")
    return hook(course=course, actor=actor) if hook else None


def roster_preview(*, course, keep_user_ids: set[int], new_accounts: int) -> dict | None:
    hook = _roster_hooks.get("preview")
    return hook(course=course, keep_user_ids=keep_user_ids, new_accounts=new_accounts) if hook else None


def course_links(*, course, user) -> list[tuple[str, str]]:
    hook = _roster_hooks.get("links")
    return list(hook(course=course, user=user)) if hook else []

"""Fulfilment hooks: higher apps (compute) register what a request of a kind takes and how it is made.

tenants never imports compute. At start-up compute calls, for each kind it fulfils:

    register_planner(RequestKind.COURSE_DESKTOPS, plan_course_desktops)
    register_fulfiller(RequestKind.COURSE_DESKTOPS, fulfil_course_desktops)

The planner is called at submit with ``tenant``, ``course``, ``requester`` and the
requester's ``payload``; it checks the payload (raising a ServiceError) and returns
``(amounts, payload)``: what fulfilment will really take from the quotas (a flavor times
the seats it will make) and the payload as fulfilment will read it. The request is held,
routed and auto-approved on those amounts, never on amounts the requester typed.

The fulfiller receives the approved ApprovalRequest (its `payload`, its amounts and its
`reservation`, already held against the quotas) after the approving transaction has
committed, and again when the requester retries a partial or failed fulfilment (so it
must be idempotent: make what is missing, retry what failed). It starts the work and
reports with `tenants.services.request_hand_over` (the made resources hold their own
quota now) and `request_report` (how many run, failed, are still being made) or
`request_fail`. A kind without a fulfiller is not offered by the request form.
"""

from collections.abc import Callable

from common.hooks import Registry

_fulfillers = Registry()  # by request kind
_planners = Registry()  # by request kind


def register_fulfiller(kind: str, fn: Callable) -> None:
    _fulfillers.register(fn, key=str(kind))


def unregister_fulfiller(kind: str) -> None:
    _fulfillers.unregister(str(kind))


def fulfiller_for(kind: str) -> Callable | None:
    return _fulfillers.get(str(kind))


def register_planner(kind: str, fn: Callable) -> None:
    _planners.register(fn, key=str(kind))


def unregister_planner(kind: str) -> None:
    _planners.unregister(str(kind))


def planner_for(kind: str) -> Callable | None:
    return _planners.get(str(kind))


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

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

_fulfillers: dict[str, Callable] = {}


def register_fulfiller(kind: str, fn: Callable) -> None:
    _fulfillers[str(kind)] = fn


def unregister_fulfiller(kind: str) -> None:
    _fulfillers.pop(str(kind), None)


def fulfiller_for(kind: str) -> Callable | None:
    return _fulfillers.get(str(kind))

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

"""Hooks through which network tells higher apps of its changes: compute what to push, billing what to meter.

network may not import compute or billing (shared/STYLE.md), so they register their handlers
here at start-up (``compute.networking.register_hooks``). Events fire after the
transaction commits; an event without a handler changes nothing now, and the periodic
sync in compute repairs the hypervisors later.

Events: ``network_changed(network_id)``, ``network_deleted(network_id, endpoints)``,
``security_group_changed(group_id)``, ``security_group_deleted(group_id)``
(nothing to push: a group in use cannot be deleted),
``nic_changed(desktop_id)``, ``forwarding_changed(eip_id)``.

One event fires inside the transaction instead (``fire_in_transaction``), because what it
changes must commit or roll back with the change itself: ``elastic_ip_held(eip, held)``, an
elastic IP allocated (``held=True``, after the row is saved) or being released
(``held=False``, before the row is deleted); billing registers it (``billing/apps.py``) and
meters the address from its allocation to its release, bound or not. A handler's error there
undoes the change.
"""

import logging
from collections import defaultdict
from collections.abc import Callable

from django.db import transaction

from common.hooks import Registry

log = logging.getLogger(__name__)

_handlers: dict[str, Registry] = defaultdict(Registry)


def register(event: str, handler: Callable) -> None:
    _handlers[event].register(handler)


def unregister(event: str, handler: Callable) -> None:
    _handlers[event].unregister(handler)


def fire(event: str, **kwargs) -> None:
    for handler in _handlers[event]:
        try:
            handler(**kwargs)
        except Exception:  # a handler failing must not undo a committed change; the sync repairs
            log.exception("network hook %s failed", event)


def fire_on_commit(event: str, **kwargs) -> None:
    transaction.on_commit(lambda: fire(event, **kwargs))


def fire_in_transaction(event: str, **kwargs) -> None:
    """Call the handlers now, in the caller's transaction; their errors propagate (and roll it back)."""
    for handler in _handlers[event]:
        handler(**kwargs)

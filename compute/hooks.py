"""Hooks higher apps (billing) register at start-up, so compute never imports them.

Two kinds, both called by compute's services inside the transaction they concern:

- observers of a desktop's billable state: every change that affects cost (created,
  started, stopped, resized, disk attached/detached, GPU assigned, deleted, owner or
  course moved) calls ``desktop_changed(desktop=..., at=..., reason=...)`` after saving
  the row, still inside the transaction that holds the desktop's row lock. Billing
  closes the open usage interval there, so a rolled-back change meters nothing and a
  committed one is metered exactly once. Observers must be idempotent: the same state
  reported twice counts once.
- checks before a desktop is created: ``desktop_create_check(tenant=..., course=...)``
  runs every registered check, which raises a ``common.errors.ServiceError`` to refuse
  (billing refuses new desktops of a tenant or course past a blocking budget).
- observers of a data disk (``Volume``) that outlives its desktop: every change of a
  volume's state (created, attaching, attached, detaching, detached, deleting, deleted,
  error) calls ``volume_changed(volume=..., at=..., reason=...)`` after saving the row,
  inside the transaction that holds the volume's row lock. While a desktop holds the disk
  (attached) its cost is the desktop's; otherwise (detached) billing meters the volume on
  its own. When the change took the volume off a desktop, ``desktop_id`` names that
  desktop, so the disk moves from one meter to the other at the same instant.

Nothing registered: changes are not metered and nothing is refused (compute alone works).
"""

from collections.abc import Callable

from common.hooks import Registry

_observers = Registry()
_batch_observers = Registry()  # an observer's function for a batch, under the observer
_create_checks = Registry()
_volume_observers = Registry()


def register_desktop_observer(fn: Callable, *, many: Callable | None = None) -> None:
    """``fn(*, desktop, at, reason)``; registering the same function twice keeps one.

    ``many(*, desktops, at, reason)``, when given, takes a batch of desktops at once
    (``desktops_changed``: a takeover of 1,000 VMs), with the same result as ``fn`` for each.
    """
    _observers.register(fn)
    if many is not None:
        _batch_observers.register(many, key=fn)


def unregister_desktop_observer(fn: Callable) -> None:
    _observers.unregister(fn)
    _batch_observers.unregister(fn)


def desktop_changed(*, desktop, at=None, reason: str = "") -> None:
    """Tell the observers that ``desktop`` (saved, row-locked) now is what it is, as of ``at``."""
    if at is None:
        from django.utils import timezone

        at = timezone.now()
    for fn in _observers:
        fn(desktop=desktop, at=at, reason=reason)


def register_volume_observer(fn: Callable) -> None:
    """``fn(*, volume, at, reason, desktop_id)``; registering the same function twice keeps one."""
    _volume_observers.register(fn)


def unregister_volume_observer(fn: Callable) -> None:
    _volume_observers.unregister(fn)


def volume_changed(*, volume, at=None, reason: str = "", desktop_id: int | None = None) -> None:
    """Tell the observers that ``volume`` (saved, row-locked) now is what it is, as of ``at``.

    ``desktop_id``: the desktop the volume was on before this change, when the change took it off.
    """
    if at is None:
        from django.utils import timezone

        at = timezone.now()
    for fn in _volume_observers:
        fn(volume=volume, at=at, reason=reason, desktop_id=desktop_id)


def desktops_changed(*, desktops: list, at=None, reason: str = "") -> None:
    """desktop_changed for a batch of saved desktops, as of the same ``at`` (one call per observer
    that takes batches, one per desktop for the others)."""
    if at is None:
        from django.utils import timezone

        at = timezone.now()
    for fn in _observers:
        many = _batch_observers.get(fn)
        if many is not None:
            many(desktops=desktops, at=at, reason=reason)
        else:
            for desktop in desktops:
                fn(desktop=desktop, at=at, reason=reason)


def register_create_check(fn: Callable) -> None:
    """``fn(*, tenant, course)`` raising a ServiceError to refuse a new desktop."""
    _create_checks.register(fn)


def unregister_create_check(fn: Callable) -> None:
    _create_checks.unregister(fn)


def desktop_create_check(*, tenant, course=None) -> None:
    for fn in _create_checks:
        fn(tenant=tenant, course=course)

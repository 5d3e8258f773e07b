"""Metering: the usage intervals of desktops, of detached data disks and of elastic IPs.

Metering is called by compute through ``compute.hooks`` inside the transaction of the
state change (registered in ``BillingConfig.ready``). It is idempotent: the cursor of a
desktop remembers what the desktop holds; the same allocation reported again writes
nothing, and a change is written once, when the transaction that made it commits. A
worker that dies between the hypervisor call and the state update has changed nothing
in the database: the desktop is metered as what the database says until the update
(or reconciliation) lands, so no time is lost and none is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import metering
from billing.locks import (
    cursor_locked,
    cursors_locked,
    desktop_cursors_locked,
    elastic_ip_cursor_locked,
    volume_cursor_locked,
)
from billing.models import CURSOR_MODELS, ElasticIPMeterCursor, MeterCursor, UsageInterval, VolumeMeterCursor

if TYPE_CHECKING:
    from compute.models import Desktop, Volume
    from network.models import ElasticIP

Cursor = MeterCursor | VolumeMeterCursor | ElasticIPMeterCursor


def _pieces(cursor: Cursor, until: datetime) -> list[UsageInterval]:
    allocation = cursor_allocation(cursor)
    if not allocation.billable or until <= cursor.since:
        return []
    return [
        UsageInterval(
            **cursor.holder,
            day=day,
            start=start,
            end=end,
            duration_us=metering.duration_us(start, end),
            **allocation.fields(),
        )
        for day, start, end in metering.split_by_day(cursor.since, until)
    ]


def _advance(cursor: Cursor, allocation: metering.Allocation, at: datetime) -> list:
    """Close the cursor's open interval at ``at`` (a late report never reaches back before it
    opened: that time is already counted) and let it hold ``allocation`` from there (not saved).
    Returns the closed pieces, to be written."""
    at = max(at, cursor.since)
    pieces = _pieces(cursor, at)
    for name, value in allocation.fields().items():
        setattr(cursor, name, value)
    cursor.since = at
    return pieces


def cursor_allocation(cursor: Cursor) -> metering.Allocation:
    return metering.Allocation(**{name: getattr(cursor, name) for name in metering.ALLOCATION_FIELDS})


def desktop_usage_record(*, desktop: Desktop, at: datetime | None = None, reason: str = "") -> bool:
    """Close the desktop's open usage interval at ``at`` and open the next with what it holds now.

    Returns whether anything changed. Called in the caller's transaction (compute's, with
    the desktop row locked); a report of an unchanged allocation is a no-op.
    """
    return _record(
        MeterCursor,
        {"desktop_id": desktop.pk},
        metering.allocation_of(desktop),
        at=at or timezone.now(),
        lock=lambda: cursor_locked(desktop.pk),
    )


def volume_usage_record(*, volume: Volume, at: datetime | None = None) -> bool:
    """The same for a data disk on its own (detached): close its interval at ``at``, open the next."""
    return _record(
        VolumeMeterCursor,
        {"volume_id": volume.pk},
        metering.volume_allocation_of(volume),
        at=at or timezone.now(),
        lock=lambda: volume_cursor_locked(volume.pk),
    )


def elastic_ip_usage_record(*, eip: ElasticIP, held: bool, at: datetime | None = None) -> bool:
    """The same for an elastic IP: one address from its allocation (``held``) until its release."""
    return _record(
        ElasticIPMeterCursor,
        {"elastic_ip_id": eip.pk},
        metering.elastic_ip_allocation_of(eip, held=held),
        at=at or timezone.now(),
        lock=lambda: elastic_ip_cursor_locked(eip.pk),
    )


def _record(model, holder: dict, allocation: metering.Allocation, *, at: datetime, lock) -> bool:
    with transaction.atomic():
        cursor = lock()
        if cursor is None:
            if not allocation.billable:
                return False
            try:
                with transaction.atomic():
                    model.objects.create(**holder, since=at, **allocation.fields())
            except IntegrityError:
                # Someone else opened it first: fall through and treat this as a change.
                cursor = lock()
            else:
                return True
        if cursor_allocation(cursor) == allocation:
            return False
        UsageInterval.objects.bulk_create(_advance(cursor, allocation, at))
        if not allocation.billable:
            # Nothing held any more (deleted, or failed before it was made): no open interval,
            # so the sweeps never visit the desktops of past terms.
            cursor.delete()
        else:
            cursor.save()
    return True


def desktop_changed(*, desktop: Desktop, at: datetime, reason: str = "") -> None:
    """The observer compute calls (``compute.hooks``): meters the change."""
    desktop_usage_record(desktop=desktop, at=at, reason=reason)


def _allocations(desktops: list[Desktop]) -> dict[int, metering.Allocation]:
    """What each desktop holds now, by id: its data disks read for all at once."""
    from compute.models import Volume

    ids = [d.pk for d in desktops]
    volumes: dict[int, list] = {}
    for volume in Volume.objects.filter(desktop_id__in=ids):
        volumes.setdefault(volume.desktop_id, []).append(volume)
    return {d.pk: metering.allocation_of(d, volumes=volumes.get(d.pk, [])) for d in desktops}


def desktops_changed(*, desktops: Iterable[Desktop], at: datetime, reason: str = "") -> None:
    """The batch observer (``compute.hooks.desktops_changed``): desktop_changed for each, in a
    handful of queries (a takeover of 1,000 VMs): data disks read for all at once, the open
    intervals locked in one statement, pieces and cursors written in bulk."""
    desktops = [d for d in desktops if d.pk]
    if not desktops:
        return
    with transaction.atomic():
        cursors = desktop_cursors_locked(sorted(d.pk for d in desktops))
        opened, moved, closed, pieces = [], [], [], []
        for desktop_id, allocation in _allocations(desktops).items():
            cursor = cursors.get(desktop_id)
            if cursor is None:
                if allocation.billable:
                    opened.append(MeterCursor(desktop_id=desktop_id, since=at, **allocation.fields()))
            elif cursor_allocation(cursor) != allocation:
                pieces.extend(_advance(cursor, allocation, at))
                (moved if allocation.billable else closed).append(cursor)
        UsageInterval.objects.bulk_create(pieces, batch_size=2000)
        MeterCursor.objects.filter(pk__in=[c.pk for c in closed]).delete()
        MeterCursor.objects.bulk_update(moved, ["since", *metering.ALLOCATION_FIELDS], batch_size=500)
        try:
            with transaction.atomic():
                MeterCursor.objects.bulk_create(opened, batch_size=500)
        except IntegrityError:
            # Another transaction opened one of them meanwhile: take those one at a time.
            for cursor in opened:
                desktop = next(d for d in desktops if d.pk == cursor.desktop_id)
                desktop_usage_record(desktop=desktop, at=at, reason=reason)


def volume_changed(*, volume: Volume, at: datetime, reason: str = "", desktop_id: int | None = None) -> None:
    """The volume observer compute calls (``compute.hooks``): moves a disk between its desktop's meter and its own.

    The desktop that holds it (or that it just left, ``desktop_id``) is metered again at the
    same instant, so the disk's GiB pass from one interval to the other with no gap and no
    overlap. Desktop cursors are locked before volume cursors, the order the sweep takes.
    The desktop is read, not locked: compute keeps it busy while a disk moves, so no other
    change of it is in flight, and locking it here would invert compute's desktop-then-volume order.
    """
    from compute.models import Desktop

    with transaction.atomic():
        for pk in sorted({pk for pk in (volume.desktop_id, desktop_id) if pk}):
            desktop = Desktop.objects.filter(pk=pk).first()
            if desktop is not None:
                desktop_usage_record(desktop=desktop, at=at, reason=reason)
        volume_usage_record(volume=volume, at=at)


def elastic_ip_changed(*, eip: ElasticIP, held: bool) -> None:
    """The handler network calls (``network.hooks`` "elastic_ip_held") in the transaction that
    allocates (``held``) or releases an elastic IP, before the released row is deleted."""
    elastic_ip_usage_record(eip=eip, held=held)


def usage_close_until(*, until: datetime, tenant_ids: list[int] | None = None) -> int:
    """Write every open interval (desktops', then detached volumes', then elastic IPs') up to ``until`` (e.g. a month
    boundary) and reopen it there.

    Idempotent: an interval already closed past ``until`` is left alone. Returns the pieces written.
    """
    written = 0
    with transaction.atomic():
        for model in CURSOR_MODELS:
            cursors = cursors_locked(since_before=until, tenant_ids=tenant_ids, model=model)
            pieces = []
            for cursor in cursors:
                pieces.extend(_pieces(cursor, until))
            UsageInterval.objects.bulk_create(pieces, batch_size=2000)
            written += len(pieces)
            ids = [c.pk for c in cursors]
            for start in range(0, len(ids), 2000):
                model.objects.filter(pk__in=ids[start : start + 2000]).update(since=until)
    return written

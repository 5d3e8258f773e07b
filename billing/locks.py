"""Row locks of billing, in one place: meter cursors, invoices and document counters."""

from django.db import IntegrityError, transaction

from billing.models import DocumentCounter, ElasticIPMeterCursor, Invoice, MeterCursor, VolumeMeterCursor


def cursor_locked(desktop_id: int) -> MeterCursor | None:
    """The desktop's open usage interval, locked for the rest of the transaction (None if none)."""
    return MeterCursor.objects.select_for_update().filter(desktop_id=desktop_id).first()


def desktop_cursors_locked(desktop_ids: list[int]) -> dict[int, MeterCursor]:
    """The open usage intervals of these desktops by desktop id, locked in primary-key order."""
    cursors = MeterCursor.objects.select_for_update().filter(desktop_id__in=desktop_ids).order_by("pk")
    return {cursor.desktop_id: cursor for cursor in cursors}


def volume_cursor_locked(volume_id: int) -> VolumeMeterCursor | None:
    """The detached volume's open usage interval, locked for the rest of the transaction (None if none)."""
    return VolumeMeterCursor.objects.select_for_update().filter(volume_id=volume_id).first()


def elastic_ip_cursor_locked(eip_id: int) -> ElasticIPMeterCursor | None:
    """The elastic IP's open usage interval, locked for the rest of the transaction (None if none)."""
    return ElasticIPMeterCursor.objects.select_for_update().filter(elastic_ip_id=eip_id).first()


def cursors_locked(*, since_before, tenant_ids=None, model=MeterCursor) -> list:
    """Every open interval (of ``model``: desktops', volumes' or elastic IPs') that started before ``since_before``,
    locked in primary-key order.

    The candidates are read first and then locked through the primary key: locking through the
    ``since`` index would take locks in ``since`` order, and two sweeps could deadlock.
    """
    candidates = model.objects.filter(since__lt=since_before)
    if tenant_ids is not None:
        candidates = candidates.filter(tenant_id__in=tenant_ids)
    ids = list(candidates.order_by("pk").values_list("pk", flat=True))
    locked = []
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        locked += model.objects.select_for_update().filter(pk__in=chunk).order_by("pk")
    # Another sweep may have moved some past ``since_before`` while we waited.
    return [cursor for cursor in locked if cursor.since < since_before]


def invoice_locked(pk: int) -> Invoice:
    """The invoice, locked until the transaction ends: its credit notes are counted against it one at a time."""
    return Invoice.objects.select_for_update().get(pk=pk)


def counter_ensure(*, kind: str, year: int) -> None:
    """Create the counter row in its own short transaction, before any issuing transaction.

    Inserting it inside the issuing transaction would make concurrent issuers wait on the
    new row's key and then deadlock upgrading to the row lock.
    """
    if DocumentCounter.objects.filter(kind=kind, year=year).exists():
        return
    try:
        with transaction.atomic():
            DocumentCounter.objects.create(kind=kind, year=year)
    except IntegrityError:
        pass  # created by a concurrent issuer


def counter_next(*, kind: str, year: int) -> int:
    """The next number of a kind in a year. Call inside the transaction that uses it: the row stays
    locked until it commits, and a rollback gives the number back, so numbers have no gaps.
    ``counter_ensure`` must have run first (outside the transaction, where there is one)."""
    counter = DocumentCounter.objects.select_for_update().get(kind=kind, year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last

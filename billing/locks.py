"""Row locks of billing, in one place: meter cursors and document counters."""

from django.db import IntegrityError, transaction

from billing.models import DocumentCounter, MeterCursor


def cursor_locked(desktop_id: int) -> MeterCursor | None:
    """The desktop's open usage interval, locked for the rest of the transaction (None if none)."""
    return MeterCursor.objects.select_for_update().filter(desktop_id=desktop_id).first()


def cursors_locked(*, since_before, tenant_ids=None) -> list[MeterCursor]:
    """Every open interval that started before ``since_before``, locked in primary-key order."""
    queryset = MeterCursor.objects.select_for_update().filter(since__lt=since_before).order_by("pk")
    if tenant_ids is not None:
        queryset = queryset.filter(tenant_id__in=tenant_ids)
    return list(queryset)


def counter_next(*, kind: str, year: int) -> int:
    """The next number of a kind in a year. Call inside the transaction that uses it: the row stays
    locked until it commits, and a rollback gives the number back, so numbers have no gaps."""
    try:
        with transaction.atomic():
            DocumentCounter.objects.get_or_create(kind=kind, year=year)
    except IntegrityError:
        pass  # created by a concurrent issuer: lock theirs
    counter = DocumentCounter.objects.select_for_update().get(kind=kind, year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last

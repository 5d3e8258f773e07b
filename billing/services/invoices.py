"""Invoices of closed months and the credit notes against them; numbers run without gaps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from billing import metering, pricing
from billing.errors import BillingError
from billing.locks import counter_ensure, counter_next, invoice_locked
from billing.models import CreditNote, Invoice, InvoiceLine, Item, UsageInterval
from billing.services.usage import usage_close_until
from common.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from tenants.models import Tenant, User


def month_parse(value: str | date) -> date:
    """'YYYY-MM' -> the month's first day, else InvalidInput."""
    if isinstance(value, date):
        return value.replace(day=1)
    try:
        parsed = datetime.strptime(str(value).strip(), "%Y-%m").date()
    except ValueError:
        raise InvalidInput(
            _("月份格式应为 YYYY-MM，例如 2026-10。"), code=BillingError.MONTH_INVALID, detail={"month": str(value)}
        )
    if parsed.year < 2000:
        raise InvalidInput(_("月份无效。"), code=BillingError.MONTH_INVALID, detail={"month": str(value)})
    return parsed


def _require_month_over(month: date, now: datetime) -> tuple[datetime, datetime]:
    start, end = metering.month_bounds(month)
    if end > now:
        raise InvalidInput(
            _("%(month)s 尚未结束，只能为已结束的月份开具账单。") % {"month": month.strftime("%Y-%m")},
            code=BillingError.MONTH_NOT_OVER,
            detail={"month": month.strftime("%Y-%m")},
        )
    return start, end


@dataclass
class IssueResult:
    issued: list[str] = field(default_factory=list)
    skipped: int = 0


def invoices_issue(
    *,
    month: str | date,
    actor: User | None = None,
    tenants: Iterable[Tenant] | None = None,
    now: datetime | None = None,
) -> IssueResult:
    """Issue one invoice per billed tenant for a past month; running it again issues nothing new.

    ``tenants`` limits it (a finance user issues for their own subtree). Open intervals
    are first closed at the month's end, so usage running across the boundary is split.
    """
    month = month_parse(month)
    now = now or timezone.now()
    start, end = _require_month_over(month, now)
    tenant_ids = None if tenants is None else [t.pk for t in tenants]
    usage_close_until(until=end, tenant_ids=tenant_ids)

    from tenants.models import Tenant

    first, following = pricing.month_days(month)
    billed = UsageInterval.objects.filter(day__gte=first, day__lt=following)
    if tenant_ids is not None:
        billed = billed.filter(tenant_id__in=tenant_ids)
    billed_ids = set(billed.values_list("tenant_id", flat=True).distinct().order_by())
    result = IssueResult()
    tenants_billed = list(Tenant.objects.filter(pk__in=billed_ids).order_by("path"))
    book = pricing.RateBook(tenants_billed)
    for tenant in tenants_billed:
        invoice = invoice_issue(actor=actor, tenant=tenant, month=month, book=book, now=now)
        if invoice is None:
            result.skipped += 1
        else:
            result.issued.append(invoice.number)
    return result


def invoice_issue(
    *,
    actor: User | None,
    tenant: Tenant,
    month: date,
    book: pricing.RateBook | None = None,
    now: datetime | None = None,
) -> Invoice | None:
    """One tenant's invoice for a (closed) month; None if it exists already."""
    now = now or timezone.now()
    first, following = pricing.month_days(month)
    year = timezone.localtime(now).year
    counter_ensure(kind="INV", year=year)
    with transaction.atomic():
        # The counter's row lock serialises issuers, so the existence check below cannot race.
        number = counter_next(kind="INV", year=year)
        if Invoice.objects.filter(tenant=tenant, month=first).exists():
            transaction.set_rollback(True)  # give the number back: numbers have no gaps
            return None
        rows = pricing.usage_rows(
            UsageInterval.objects.filter(tenant=tenant), "course_id", first=first, following=following
        )
        draft = pricing.draft_for(tenant=tenant, month=first, rows=rows, book=book)
        invoice = Invoice.objects.create(
            tenant=tenant,
            month=first,
            number=f"INV-{year}-{number:06d}",
            total=draft.total,
            issued_at=now,
            issued_by=actor,
        )
        courses = _courses(draft)
        InvoiceLine.objects.bulk_create(
            [
                InvoiceLine(
                    invoice=invoice,
                    position=position,
                    course_id=line.course_id,
                    description=_line_description(courses.get(line.course_id), line.item),
                    item=line.item,
                    unit=line.unit,
                    period_start=line.period_start,
                    period_end=line.period_end,
                    quantity=line.quantity,
                    free_quantity=line.free_quantity,
                    rate=line.rate,
                    discount_percent=line.discount_percent,
                    amount=line.amount,
                )
                for position, line in enumerate(draft.lines, start=1)
            ],
            batch_size=1000,
        )
        event_record(
            action=Action.INVOICE_ISSUED,
            actor=actor,
            target=invoice,
            tenant=tenant,
            detail={"number": invoice.number, "month": first.strftime("%Y-%m"), "total": str(invoice.total)},
        )
    return invoice


def _courses(draft) -> dict:
    from tenants.models import Course

    return Course.objects.in_bulk({line.course_id for line in draft.lines if line.course_id})


def _line_description(course, item: str) -> str:
    label = f"{course.code} {course.name}" if course else _("未关联课程")
    return f"{label} · {Item(item).label}"[:200]


def credit_note_issue(*, actor: User | None, invoice: Invoice, amount: Decimal | str, reason: str) -> CreditNote:
    """Credit back part or all of an issued invoice; the invoice itself never changes."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("请填写冲销原因。"), code=BillingError.CREDIT_REASON_MISSING)
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        value = None
    if value is None or not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise InvalidInput(_("冲销金额必须是最多 2 位小数的正数。"), code=BillingError.CREDIT_AMOUNT_INVALID)
    now = timezone.now()
    year = timezone.localtime(now).year
    counter_ensure(kind="CN", year=year)
    with transaction.atomic():
        number = counter_next(kind="CN", year=year)
        invoice = invoice_locked(invoice.pk)
        credited = sum((n.amount for n in invoice.credit_notes.all()), Decimal("0"))
        if credited + value > invoice.total:
            raise Conflict(
                _("冲销金额超过账单未冲销余额（%(balance)s 元）。") % {"balance": invoice.total - credited},
                code=BillingError.CREDIT_EXCEEDS_BALANCE,
                detail={"balance": str(invoice.total - credited)},
            )
        note = CreditNote.objects.create(
            invoice=invoice,
            number=f"CN-{year}-{number:06d}",
            amount=value,
            reason=reason[:500],
            issued_at=now,
            issued_by=actor,
        )
        event_record(
            action=Action.CREDIT_NOTE_ISSUED,
            actor=actor,
            target=note,
            tenant=invoice.tenant,
            detail={"invoice": invoice.number, "amount": str(value), "reason": reason[:200]},
        )
    return note

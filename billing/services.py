"""Writes of billing: metering, price plans, allowances, invoices, credit notes and budgets.

Metering is called by compute through ``compute.hooks`` inside the transaction of the
state change (registered in ``BillingConfig.ready``). It is idempotent: the cursor of a
desktop remembers what the desktop holds; the same allocation reported again writes
nothing, and a change is written once, when the transaction that made it commits. A
worker that dies between the hypervisor call and the state update has changed nothing
in the database: the desktop is metered as what the database says until the update
(or reconciliation) lands, so no time is lost and none is counted twice.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from billing import metering, pricing
from billing.errors import BillingError
from billing.locks import counter_ensure, counter_next, cursor_locked, cursors_locked, volume_cursor_locked
from billing.models import (
    Budget,
    BudgetAlert,
    CreditNote,
    FreeAllowance,
    Invoice,
    InvoiceLine,
    Item,
    MeterCursor,
    PricePlan,
    PriceRate,
    UsageInterval,
    VolumeMeterCursor,
)
from common.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)

MAX_RATE = Decimal("100000000")
THRESHOLDS = (80, 100)


# --- metering -------------------------------------------------------------------------------


def _pieces(cursor: MeterCursor | VolumeMeterCursor, until: datetime) -> list[UsageInterval]:
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


def cursor_allocation(cursor: MeterCursor | VolumeMeterCursor) -> metering.Allocation:
    return metering.Allocation(**{name: getattr(cursor, name) for name in metering.ALLOCATION_FIELDS})


def desktop_usage_record(*, desktop, at: datetime | None = None, reason: str = "") -> bool:
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


def volume_usage_record(*, volume, at: datetime | None = None) -> bool:
    """The same for a data disk on its own (detached): close its interval at ``at``, open the next."""
    return _record(
        VolumeMeterCursor,
        {"volume_id": volume.pk},
        metering.volume_allocation_of(volume),
        at=at or timezone.now(),
        lock=lambda: volume_cursor_locked(volume.pk),
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
        # A late report never reaches back before the open interval: that time is already counted.
        at = max(at, cursor.since)
        UsageInterval.objects.bulk_create(_pieces(cursor, at))
        if not allocation.billable:
            # Nothing held any more (deleted, or failed before it was made): no open interval,
            # so the sweeps never visit the desktops of past terms.
            cursor.delete()
            return True
        for name, value in allocation.fields().items():
            setattr(cursor, name, value)
        cursor.since = at
        cursor.save()
    return True


def desktop_changed(*, desktop, at, reason: str = "") -> None:
    """The observer compute calls (``compute.hooks``): meters the change."""
    desktop_usage_record(desktop=desktop, at=at, reason=reason)


def desktops_changed(*, desktops, at, reason: str = "") -> None:
    """The batch observer (``compute.hooks.desktops_changed``): desktop_changed for each, in a
    handful of queries (a takeover of 1,000 VMs): data disks and elastic IPs read for all at
    once, the open intervals locked in one statement, pieces and cursors written in bulk."""
    from compute.models import Volume
    from compute.selectors import desktop_elastic_ip_counts

    desktops = [d for d in desktops if d.pk]
    if not desktops:
        return
    ids = sorted(d.pk for d in desktops)
    with transaction.atomic():
        cursors = {
            c.desktop_id: c for c in MeterCursor.objects.select_for_update().filter(desktop_id__in=ids).order_by("pk")
        }
        volumes: dict[int, list] = {}
        for volume in Volume.objects.filter(desktop_id__in=ids):
            volumes.setdefault(volume.desktop_id, []).append(volume)
        elastic = desktop_elastic_ip_counts(ids)
        opened, moved, closed, pieces = [], [], [], []
        for desktop in desktops:
            allocation = metering.allocation_of(
                desktop, volumes=volumes.get(desktop.pk, []), elastic_ips=elastic.get(desktop.pk, 0)
            )
            cursor = cursors.get(desktop.pk)
            if cursor is None:
                if allocation.billable:
                    opened.append(MeterCursor(desktop_id=desktop.pk, since=at, **allocation.fields()))
                continue
            if cursor_allocation(cursor) == allocation:
                continue
            when = max(at, cursor.since)
            pieces.extend(_pieces(cursor, when))
            if not allocation.billable:
                closed.append(cursor.pk)
                continue
            for name, value in allocation.fields().items():
                setattr(cursor, name, value)
            cursor.since = when
            moved.append(cursor)
        UsageInterval.objects.bulk_create(pieces, batch_size=2000)
        MeterCursor.objects.filter(pk__in=closed).delete()
        MeterCursor.objects.bulk_update(moved, ["since", *metering.ALLOCATION_FIELDS], batch_size=500)
        try:
            with transaction.atomic():
                MeterCursor.objects.bulk_create(opened, batch_size=500)
        except IntegrityError:
            # Another transaction opened one of them meanwhile: take those one at a time.
            for cursor in opened:
                desktop = next(d for d in desktops if d.pk == cursor.desktop_id)
                desktop_usage_record(desktop=desktop, at=at, reason=reason)


def volume_changed(*, volume, at, reason: str = "", desktop_id: int | None = None) -> None:
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


def usage_close_until(*, until: datetime, tenant_ids=None) -> int:
    """Write every open interval (desktops', then detached volumes') up to ``until`` (e.g. a month
    boundary) and reopen it there.

    Idempotent: an interval already closed past ``until`` is left alone. Returns the pieces written.
    """
    written = 0
    with transaction.atomic():
        for model in (MeterCursor, VolumeMeterCursor):
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


# --- price plans and allowances ---------------------------------------------------------------


def rate_parse(value, *, item: str = "") -> Decimal:
    """A rate from user input: a number >= 0 with at most 4 decimals, else InvalidInput."""
    try:
        rate = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        rate = None
    if rate is None or not rate.is_finite():
        raise InvalidInput(
            _("单价必须是数字。"), code=BillingError.RATE_INVALID, detail={"item": item, "value": str(value)}
        )
    if rate < 0:
        raise InvalidInput(
            _("单价不能为负数。"), code=BillingError.RATE_NEGATIVE, detail={"item": item, "value": str(value)}
        )
    if rate.as_tuple().exponent < -4 and rate != rate.quantize(Decimal("0.0001")):
        raise InvalidInput(
            _("单价最多保留 4 位小数。"), code=BillingError.RATE_TOO_PRECISE, detail={"item": item, "value": str(value)}
        )
    if rate >= MAX_RATE:
        raise InvalidInput(
            _("单价过大。"), code=BillingError.RATE_TOO_LARGE, detail={"item": item, "value": str(value)}
        )
    return rate.quantize(Decimal("0.0001"))


def _percent(value) -> Decimal:
    try:
        percent = Decimal(str(value if value not in (None, "") else "0"))
    except (InvalidOperation, ValueError):
        percent = None
    if percent is None or not percent.is_finite() or not Decimal("0") <= percent <= Decimal("100"):
        raise InvalidInput(_("折扣必须在 0 到 100 之间。"), code=BillingError.DISCOUNT_INVALID)
    if percent != percent.quantize(Decimal("0.01")):
        raise InvalidInput(_("折扣最多保留 2 位小数。"), code=BillingError.DISCOUNT_INVALID)
    return percent.quantize(Decimal("0.01"))


def effective_parse(value) -> datetime:
    """When a plan takes effect: a date means its local midnight; a time must be a whole hour.

    A naive datetime is local time. Rates change only between two hours (``billing.pricing``),
    so 14:30 is refused rather than silently moved to 14:00.
    """
    if isinstance(value, datetime):
        instant = value if timezone.is_aware(value) else timezone.make_aware(value, metering.local_zone())
    elif isinstance(value, date):
        instant = metering.local_midnight(value)
    else:
        raise InvalidInput(_("请填写生效时间。"), code=BillingError.PRICE_PLAN_DATE_MISSING)
    local = instant.astimezone(metering.local_zone())
    if (local.minute, local.second, local.microsecond) != (0, 0, 0):
        raise InvalidInput(
            _("生效时间必须是整点，例如 2026-11-16 14:00。"),
            code=BillingError.EFFECTIVE_NOT_WHOLE_HOUR,
            detail={"effective_from": local.isoformat()},
        )
    return local


def price_plan_create(
    *, actor, tenant, name: str, effective_from: date | datetime, rates: dict, discount_percent=0
) -> PricePlan:
    """A tenant's rates from a whole hour on (items left out are inherited from the parent tenant).

    ``effective_from``: a datetime on a whole hour, or a date (from its local midnight).
    """
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("请填写方案名称。"), code=BillingError.PRICE_PLAN_NAME_MISSING)
    effective_from = effective_parse(effective_from)
    unknown = set(rates) - set(Item.values)
    if unknown:
        raise InvalidInput(
            _("未知的计费项：%(items)s") % {"items": ", ".join(sorted(map(str, unknown)))},
            code=BillingError.ITEM_UNKNOWN,
        )
    parsed = {item: rate_parse(value, item=item) for item, value in rates.items() if value not in (None, "")}
    if not parsed:
        raise InvalidInput(_("请至少填写一个单价。"), code=BillingError.PRICE_PLAN_EMPTY)
    discount = _percent(discount_percent)
    with transaction.atomic():
        if PricePlan.objects.filter(tenant=tenant, effective_from=effective_from).exists():
            raise Conflict(_("该租户在此时间已有价格方案。"), code=BillingError.PRICE_PLAN_DATE_TAKEN)
        plan = PricePlan.objects.create(
            tenant=tenant, name=name[:100], effective_from=effective_from, discount_percent=discount, created_by=actor
        )
        PriceRate.objects.bulk_create([PriceRate(plan=plan, item=item, rate=rate) for item, rate in parsed.items()])
        event_record(
            action=Action.PRICE_PLAN_CHANGED,
            actor=actor,
            target=plan,
            tenant=tenant,
            detail={
                "effective_from": effective_from.isoformat(),
                "rates": {k: str(v) for k, v in parsed.items()},
                "discount_percent": str(discount),
            },
        )
    return plan


def allowance_set(*, actor, tenant, item: str, hours) -> FreeAllowance:
    if item not in Item.values:
        raise InvalidInput(_("未知的计费项：%(items)s") % {"items": item}, code=BillingError.ITEM_UNKNOWN)
    try:
        value = Decimal(str(hours))
    except (InvalidOperation, ValueError):
        value = None
    if value is None or not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.0001")):
        raise InvalidInput(_("免费额度必须是不超过 4 位小数的非负数。"), code=BillingError.ALLOWANCE_INVALID)
    with transaction.atomic():
        allowance, _created = FreeAllowance.objects.update_or_create(
            tenant=tenant, item=item, defaults={"hours": value}
        )
        event_record(
            action=Action.ALLOWANCE_CHANGED,
            actor=actor,
            target=allowance,
            tenant=tenant,
            detail={"item": item, "hours": str(value)},
        )
    return allowance


# --- invoices -------------------------------------------------------------------------------


def month_parse(value) -> date:
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


def invoices_issue(*, month, actor=None, tenants=None, now: datetime | None = None) -> IssueResult:
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


def invoice_issue(*, actor, tenant, month: date, book=None, now: datetime | None = None) -> Invoice | None:
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


def credit_note_issue(*, actor, invoice: Invoice, amount, reason: str) -> CreditNote:
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
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
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


# --- budgets --------------------------------------------------------------------------------


def budget_set(*, actor, tenant, amount, course=None, block_new_desktops: bool = False) -> Budget:
    if course is not None and course.tenant_id != tenant.pk:
        raise InvalidInput(_("课程不属于该租户。"), code=BillingError.COURSE_TENANT_MISMATCH)
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        value = None
    if value is None or not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise InvalidInput(_("预算必须是最多 2 位小数的正数。"), code=BillingError.BUDGET_AMOUNT_INVALID)
    with transaction.atomic():
        budget, _created = Budget.objects.update_or_create(
            tenant=tenant, course=course, defaults={"amount": value, "block_new_desktops": bool(block_new_desktops)}
        )
        event_record(
            action=Action.BUDGET_CHANGED,
            actor=actor,
            target=budget,
            tenant=tenant,
            detail={"amount": str(value), "course": course.pk if course else None, "block": bool(block_new_desktops)},
        )
    return budget


def budgets_check(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Notify (once per budget, month and threshold) when a month's spend reaches 80% and 100%."""
    from billing.selectors import budget_spent

    now = now or timezone.now()
    month = timezone.localtime(now).date().replace(day=1)
    alerts = []
    for budget in Budget.objects.select_related("tenant", "course"):
        spent = budget_spent(budget, now=now)
        for threshold in THRESHOLDS:
            if spent * 100 < budget.amount * threshold:
                continue
            with transaction.atomic():
                alert, created = BudgetAlert.objects.get_or_create(
                    budget=budget, month=month, threshold=threshold, defaults={"spent": spent}
                )
                if not created:
                    continue
                event_record(
                    action=Action.BUDGET_THRESHOLD_REACHED,
                    target=budget,
                    tenant=budget.tenant,
                    detail={"threshold": threshold, "spent": str(spent), "amount": str(budget.amount)},
                )
                transaction.on_commit(lambda b=budget, t=threshold, s=spent: _notify(b, t, s))
            alerts.append(alert)
    return alerts


def _notify(budget: Budget, threshold: int, spent: Decimal) -> None:
    from tenants.models import Membership

    recipients = list(
        Membership.objects.filter(tenant=budget.tenant, role="finance")
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if budget.course_id and budget.course.teacher.email:
        recipients.append(budget.course.teacher.email)
    if not recipients:
        return
    scope = f"{budget.course.code} {budget.course.name}" if budget.course_id else budget.tenant.name
    subject = _("预算提醒：%(scope)s 本月费用已达 %(threshold)s%%") % {"scope": scope, "threshold": threshold}
    body = _("%(scope)s 本月已产生费用 %(spent)s 元，预算 %(amount)s 元。") % {
        "scope": scope,
        "spent": spent,
        "amount": budget.amount,
    }
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except OSError:
        log.warning("budget notice for budget %s not sent", budget.pk, exc_info=True)


def budget_enforce(*, tenant, course=None) -> None:
    """Refuse a new desktop when a blocking budget of its tenant (or course) is spent (compute hook)."""
    from billing.selectors import budget_blocks

    blocking = budget_blocks(tenant, course)
    if blocking is not None:
        raise Conflict(
            _("本月预算（%(amount)s 元）已用完，暂不能新建桌面。请联系财务调整预算。") % {"amount": blocking.amount},
            code=BillingError.BUDGET_EXHAUSTED,
            detail={"budget": blocking.pk},
        )

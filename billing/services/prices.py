"""Price plans and free allowances: what a tenant pays per item, from which hour on."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from billing import metering
from billing.errors import BillingError
from billing.models import FreeAllowance, Item, PricePlan, PriceRate
from common import limits
from common.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from tenants.models import Tenant, User


MAX_RATE = Decimal("100000000")


def rate_parse(value: Decimal | str, *, item: str = "") -> Decimal:
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


def effective_parse(value: date | datetime) -> datetime:
    """When a plan takes effect: a date means its local midnight; a time must be a whole hour.

    A naive datetime is local time. Rates change only between two hours (``billing.pricing``),
    so 14:30 is refused rather than silently moved to 14:00.
    """
    if isinstance(value, date):  # a datetime too
        limits.check_year(value, field="effective_from")
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
    *,
    actor: User | None,
    tenant: Tenant,
    name: str,
    effective_from: date | datetime,
    rates: dict,
    discount_percent: Decimal | str = 0,
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


def allowance_set(*, actor: User | None, tenant: Tenant, item: str, hours: Decimal | str) -> FreeAllowance:
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

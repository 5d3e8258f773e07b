"""Pricing: the rate of an item for a tenant on a day, free allowances, and invoice lines.

Rates. A price plan belongs to a tenant and holds hourly rates per item from its
``effective_from`` date (local midnight) on. The rate of an item for a tenant on a day
comes from the nearest tenant up the tree (the tenant itself, then its parent...) that
has a plan in force that day with a rate for that item; among that tenant's plans, the
latest in force wins. So a child overrides what it sets and inherits the rest, and a
rate change mid-month prices each day at its own rate (usage pieces never cross a day).
The plan's discount applies to the amounts priced at its rates. No plan: rate 0.

Free allowances. ``FreeAllowance(tenant, item, hours)`` (nearest tenant up the tree):
the first ``hours`` of the item used by each course within its term are free. The free
part of a month is ``min(A, used up to the month's end) - min(A, used before it)``,
counting only usage within the term; it is taken from the month's earliest usage.

Rounding (applied once per invoice line, never per piece): quantities stay exact
integers (unit-microseconds) until a line is made. A line's amount is
``(quantity - free quantity) x rate x (1 - discount%)`` computed exactly as a fraction
and then rounded to the fen (0.01 yuan) half up. The invoice total is the sum of the
rounded line amounts. Quantities are shown rounded to 4 decimals (half up).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from django.db.models import Sum

from billing.metering import ALLOCATION_FIELDS, divisor, unit_microseconds
from billing.models import UNITS, FreeAllowance, Item, PricePlan, UsageInterval

ITEMS = list(Item)
CONFIG_FIELDS = tuple(f for f in ALLOCATION_FIELDS if f not in ("tenant_id", "course_id", "user_id"))
FEN = Decimal("0.01")
QUANTUM = Decimal("0.0001")
ZERO = Decimal("0")


def round_fraction(value: Fraction, quantum: Decimal) -> Decimal:
    """An exact fraction rounded half up to ``quantum`` (0.01 for money, 0.0001 for quantities)."""
    scaled = value / Fraction(quantum)
    sign = -1 if scaled < 0 else 1
    scaled = abs(scaled)
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    if 2 * rest >= scaled.denominator:
        whole += 1
    return (Decimal(sign * whole) * quantum).quantize(quantum)


def to_money(value: Fraction) -> Decimal:
    return round_fraction(value, FEN)


def to_quantity(units: int, item: str) -> Decimal:
    return round_fraction(Fraction(units, divisor(item)), QUANTUM)


def ancestor_paths(path: str) -> list[str]:
    """ "/uni/cs/ai/" -> ["/uni/cs/ai/", "/uni/cs/", "/uni/"] (nearest first)."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:n]) + "/" for n in range(len(parts), 0, -1)]


class RateBook:
    """Rates and allowances of a set of tenants and their ancestors, loaded in two queries."""

    def __init__(self, tenants):
        self.chains: dict[int, list[str]] = {t.pk: ancestor_paths(t.path) for t in tenants}
        paths = {p for chain in self.chains.values() for p in chain}
        # path -> plans, latest first, as (effective_from, discount, {item: rate})
        self.plans: dict[str, list[tuple[date, Decimal, dict]]] = defaultdict(list)
        for plan in (
            PricePlan.objects.filter(tenant__path__in=paths)
            .select_related("tenant")
            .prefetch_related("rates")
            .order_by("-effective_from")
        ):
            self.plans[plan.tenant.path].append(
                (plan.effective_from, plan.discount_percent, {r.item: r.rate for r in plan.rates.all()})
            )
        self.allowances: dict[str, dict[str, Decimal]] = defaultdict(dict)
        for allowance in FreeAllowance.objects.filter(tenant__path__in=paths).select_related("tenant"):
            self.allowances[allowance.tenant.path][allowance.item] = allowance.hours
        self._cache: dict = {}

    def rate(self, tenant_id: int, item: str, day: date) -> tuple[Decimal, Decimal]:
        """(rate per unit-hour, discount percent) of ``item`` for the tenant on ``day``."""
        key = (tenant_id, item, day)
        if key not in self._cache:
            self._cache[key] = self._lookup(tenant_id, item, day)
        return self._cache[key]

    def _lookup(self, tenant_id, item, day):
        for path in self.chains.get(tenant_id, []):
            for effective_from, discount, rates in self.plans.get(path, []):
                if effective_from <= day and item in rates:
                    return rates[item], discount
        return ZERO, ZERO

    def allowance_units(self, tenant_id: int, item: str) -> int:
        for path in self.chains.get(tenant_id, []):
            hours = self.allowances.get(path, {}).get(item)
            if hours is not None:
                return int(hours * divisor(item))
        return 0

    def has_allowances(self, tenant_id: int) -> bool:
        return any(self.allowances.get(path) for path in self.chains.get(tenant_id, []))


def cost_of(units: int, item: str, rate: Decimal, discount: Decimal) -> Fraction:
    """Exact cost (yuan) of ``units`` unit-microseconds at ``rate`` less ``discount`` percent."""
    if not units or not rate:
        return Fraction(0)
    return Fraction(units, divisor(item)) * Fraction(rate) * (1 - Fraction(discount) / 100)


def grouped_usage(queryset, *keys: str):
    """Usage rows summed per ``keys`` and allocation: dicts with the keys, the allocation and ``duration_us``."""
    return queryset.values(*keys, *CONFIG_FIELDS).annotate(duration_us=Sum("duration_us")).order_by()


@dataclass
class LineDraft:
    course_id: int | None
    item: str
    period_start: date
    period_end: date
    rate: Decimal
    discount_percent: Decimal
    units: int = 0
    free_units: int = 0

    @property
    def unit(self) -> str:
        return str(UNITS[Item(self.item)])

    @property
    def quantity(self) -> Decimal:
        return to_quantity(self.units, self.item)

    @property
    def free_quantity(self) -> Decimal:
        return to_quantity(self.free_units, self.item)

    @property
    def amount(self) -> Decimal:
        return to_money(cost_of(self.units - self.free_units, self.item, self.rate, self.discount_percent))


@dataclass
class Draft:
    """An invoice before it is written (or a running estimate that never is)."""

    tenant: object
    month: date
    lines: list[LineDraft] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def _daily_units(rows) -> dict:
    """(course_id, item) -> {day: units}."""
    units: dict = defaultdict(lambda: defaultdict(int))
    for row in rows:
        for item, value in unit_microseconds(row).items():
            if value:
                units[(row["course_id"], item)][row["day"]] += value
    return units


def _term_units_before(course, first: date) -> dict[str, int]:
    """Units per item a course used within its term before ``first``."""
    totals: dict[str, int] = defaultdict(int)
    if course.term_start >= first:
        return totals
    rows = grouped_usage(UsageInterval.objects.filter(course_id=course.pk, day__gte=course.term_start, day__lt=first))
    for row in rows:
        for item, value in unit_microseconds(row).items():
            totals[item] += value
    return totals


def draft_for(*, tenant, month: date, rows, book: RateBook | None = None, courses: dict | None = None) -> Draft:
    """Invoice lines of ``tenant`` for ``month`` from usage ``rows`` (dicts with course_id, day, allocation,
    duration_us), one line per course, item and run of days at one rate, in course then item order."""
    from tenants.models import Course

    book = book or RateBook([tenant])
    first = month.replace(day=1)
    daily = _daily_units(rows)
    course_ids = {course_id for course_id, _item in daily if course_id}
    if courses is None:
        courses = Course.objects.in_bulk(course_ids)
    draft = Draft(tenant=tenant, month=first)
    allowances = book.has_allowances(tenant.pk)
    before_cache: dict = {}

    def order(key):
        course_id, item = key
        course = courses.get(course_id)
        return (course is None, course.code if course else "", ITEMS.index(item))

    for key in sorted(daily, key=order):
        course_id, item = key
        days = daily[key]
        free_left = 0
        course = courses.get(course_id)
        if allowances and course is not None:
            allowance = book.allowance_units(tenant.pk, item)
            if allowance:
                if course_id not in before_cache:
                    before_cache[course_id] = _term_units_before(course, first)
                before = before_cache[course_id].get(item, 0)
                in_term = sum(u for d, u in days.items() if course.term_start <= d <= course.term_end)
                free_left = min(allowance, before + in_term) - min(allowance, before)
        line = None
        for day in sorted(days):
            rate, discount = book.rate(tenant.pk, item, day)
            if line is None or (line.rate, line.discount_percent) != (rate, discount):
                line = LineDraft(course_id, item, day, day, rate, discount)
                draft.lines.append(line)
            line.period_end = day
            line.units += days[day]
            if free_left and course.term_start <= day <= course.term_end:
                free = min(free_left, days[day])
                line.free_units += free
                free_left -= free
    return draft


def month_days(month: date) -> tuple[date, date]:
    """(first day, first day of the next month)."""
    first = month.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)

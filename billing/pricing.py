"""Pricing: the rate of an item for a tenant at an instant, free allowances, and invoice lines.

Rates. A price plan belongs to a tenant and holds hourly rates per item from its
``effective_from`` instant on, which is always a whole hour of local time (a date alone
means that day's local midnight). The rate of an item for a tenant at an instant comes
from the nearest tenant up the tree (the tenant itself, then its parent...) that has a
plan in force then with a rate for that item; among that tenant's plans, the latest in
force wins. So a child overrides what it sets and inherits the rest. The plan's discount
applies to the amounts priced at its rates. No plan: rate 0.

Hours and months. Usage is priced as if it were cut at every hour and every month
boundary, each hour at the rate in force at its start; a desktop running across the
midnight of the 1st is charged in both months, in part. Rather than store a row per
desktop and hour, the cuts that can change a price are the only ones made:
metering stores pieces cut at local midnights (so no piece crosses a month), and
``usage_rows`` cuts the pieces of a day in which a plan takes effect at that instant.
Between two such instants all hours have one rate, so the result is the same as
hour-by-hour pricing, to the microsecond: quantities are never rounded to hours.

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

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

from django.db.models import Q, Sum

from billing.metering import ALLOCATION_FIELDS, divisor, duration_us, local_midnight, local_zone, unit_microseconds
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


class RateBook:
    """Rates and allowances of a set of tenants and their ancestors, loaded in two queries."""

    def __init__(self, tenants):
        # Nearest first: a tenant's own plan wins over its parent's.
        self.chains: dict[int, list[str]] = {t.pk: t.ancestor_paths()[::-1] for t in tenants}
        paths = {p for chain in self.chains.values() for p in chain}
        # path -> plans, latest first, as (effective_from, discount, {item: rate})
        self.plans: dict[str, list[tuple[datetime, Decimal, dict]]] = defaultdict(list)
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

    def rate(self, tenant_id: int, item: str, at: datetime) -> tuple[Decimal, Decimal]:
        """(rate per unit-hour, discount percent) of ``item`` for the tenant at the instant ``at``."""
        key = (tenant_id, item, at)
        if key not in self._cache:
            self._cache[key] = self._lookup(tenant_id, item, at)
        return self._cache[key]

    def _lookup(self, tenant_id, item, at):
        for path in self.chains.get(tenant_id, []):
            for effective_from, discount, rates in self.plans.get(path, []):
                if effective_from <= at and item in rates:
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


def rate_changes(start: datetime, end: datetime) -> list[datetime]:
    """Instants in [start, end) at which a price plan takes effect, sorted.

    Any tenant's: cutting usage where its own rates do not change costs a few rows, never a fen.
    """
    from billing.models import PricePlan

    instants = PricePlan.objects.filter(effective_from__gte=start, effective_from__lt=end)
    return sorted(set(instants.values_list("effective_from", flat=True)))


def cut_at(start: datetime, end: datetime, instants: list[datetime]) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at each of the (sorted) ``instants`` strictly inside it."""
    parts, cursor = [], start
    for instant in instants[bisect_right(instants, start) :]:
        if instant >= end:
            break
        parts.append((cursor, instant))
        cursor = instant
    parts.append((cursor, end))
    return parts


def intraday(instants: list[datetime]) -> set[date]:
    """Local days in which one of ``instants`` falls after midnight: their pieces need cutting."""
    zone = local_zone()
    days = set()
    for instant in instants:
        day = instant.astimezone(zone).date()
        if instant != local_midnight(day):
            days.add(day)
    return days


def usage_rows(
    queryset, *keys: str, first: date, following: date, stretches: bool = False, changes: list | None = None
) -> list[dict]:
    """Usage of ``queryset`` within the local days [first, following), ready to price.

    Rows are dicts with ``keys``, the allocation, ``day``, ``at`` (the instant whose rates
    price the row) and ``duration_us``. Rates are constant between the instants of
    ``rate_changes``: days without one inside them are summed in the database per day (or,
    with ``stretches``, per run of days between two changes, ``day`` being the run's first
    day); a day with a change after its midnight is read piece by piece, each piece cut at
    the change, so both parts keep their exact length. ``changes``: those instants, when the caller has
    read them already (a page pricing the same days twice reads them once).
    """
    if changes is None:
        changes = rate_changes(local_midnight(first), local_midnight(following))
    split_days = intraday(changes)
    queryset = queryset.filter(day__gte=first, day__lt=following)
    whole = queryset.exclude(day__in=split_days) if split_days else queryset
    rows = []
    if stretches:
        zone = local_zone()
        bounds = {first, following, *(c.astimezone(zone).date() for c in changes)}
        bounds |= {day + timedelta(days=1) for day in split_days}
        for lo, hi in pairwise(sorted(bounds)):
            if lo in split_days:
                continue
            for row in grouped_usage(whole.filter(day__gte=lo, day__lt=hi), *keys):
                row.update(day=lo, at=local_midnight(lo))
                rows.append(row)
    else:
        for row in grouped_usage(whole, *keys, "day"):
            row["at"] = local_midnight(row["day"])
            rows.append(row)
    if split_days:
        for piece in queryset.filter(day__in=split_days).values(*keys, *CONFIG_FIELDS, "day", "start", "end"):
            start, end = piece.pop("start"), piece.pop("end")
            for lo, hi in cut_at(start, end, changes):
                rows.append({**piece, "at": lo, "duration_us": duration_us(lo, hi)})
    return rows


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


def _units_by_time(rows) -> dict:
    """(course_id, item) -> {(day, at): units}: what each stretch of one rate used."""
    units: dict = defaultdict(lambda: defaultdict(int))
    for row in rows:
        for item, value in unit_microseconds(row).items():
            if value:
                units[(row["course_id"], item)][(row["day"], row["at"])] += value
    return units


def term_units_before(courses, first: date) -> dict[int, dict[str, int]]:
    """Units per item each of ``courses`` used within its term before ``first``, read in one query."""
    totals: dict[int, dict[str, int]] = {course.pk: defaultdict(int) for course in courses}
    by_term_start: dict[date, list[int]] = defaultdict(list)
    for course in courses:
        if course.term_start < first:
            by_term_start[course.term_start].append(course.pk)
    if not by_term_start:
        return totals
    in_term = Q()
    for term_start, ids in by_term_start.items():
        in_term |= Q(course_id__in=ids, day__gte=term_start)
    for row in grouped_usage(UsageInterval.objects.filter(in_term, day__lt=first), "course_id"):
        for item, value in unit_microseconds(row).items():
            totals[row["course_id"]][item] += value
    return totals


def draft_for(
    *,
    tenant,
    month: date,
    rows,
    book: RateBook | None = None,
    courses: dict | None = None,
    term_units: dict | None = None,
) -> Draft:
    """Invoice lines of ``tenant`` for ``month`` from usage ``rows`` (dicts with course_id, day, at, allocation,
    duration_us: see ``usage_rows``), one line per course, item and run of time at one rate, in course then
    item order. A line's period is the days of its run: two lines share the day a rate changes in.

    ``term_units``: ``term_units_before`` of the courses, read for many tenants' drafts at once; a course
    not in it is read on its own."""
    from tenants.models import Course

    book = book or RateBook([tenant])
    first = month.replace(day=1)
    daily = _units_by_time(rows)
    course_ids = {course_id for course_id, _item in daily if course_id}
    if courses is None:
        courses = Course.objects.in_bulk(course_ids)
    draft = Draft(tenant=tenant, month=first)
    allowances = book.has_allowances(tenant.pk)
    before_cache: dict = dict(term_units or {})

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
                    before_cache[course_id] = term_units_before([course], first)[course_id]
                before = before_cache[course_id].get(item, 0)
                in_term = sum(u for (d, _at), u in days.items() if course.term_start <= d <= course.term_end)
                free_left = min(allowance, before + in_term) - min(allowance, before)
        line = None
        for day, at in sorted(days):
            used = days[(day, at)]
            rate, discount = book.rate(tenant.pk, item, at)
            if line is None or (line.rate, line.discount_percent) != (rate, discount):
                line = LineDraft(course_id, item, day, day, rate, discount)
                draft.lines.append(line)
            line.period_end = day
            line.units += used
            if free_left and course.term_start <= day <= course.term_end:
                free = min(free_left, used)
                line.free_units += free
                free_left -= free
    return draft


def month_days(month: date) -> tuple[date, date]:
    """(first day, first day of the next month)."""
    first = month.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)

"""Reads of billing, scoped to the acting user; they fail closed.

Who sees what: finance, tenant admins and auditors see the usage, costs, invoices and
price plans of their tenant and its children (finance alone changes price plans and
issues invoices); the system admin sees every tenant's; a teacher sees the usage and cost
of the courses they teach (no invoices, no price plans); a student sees nothing.
"""

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from django.core.cache import cache
from django.db.models import DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import metering, pricing
from billing.errors import BillingError
from billing.models import (
    CURSOR_MODELS,
    UNITS,
    Budget,
    CreditNote,
    Invoice,
    Item,
    MeterCursor,
    PricePlan,
    UsageInterval,
)
from common.errors import InvalidInput
from tenants.models import Course, Tenant, User
from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import platform_role_of, taught_course_q, tenants_with_role

READERS = (TenantRole.FINANCE, TenantRole.TENANT_ADMIN, TenantRole.AUDITOR)
GROUPS = ("tenant", "course", "user", "item")
MAX_RANGE_DAYS = 400


def billing_tenants_for(user) -> QuerySet[Tenant]:
    """Tenants whose billing the user may read."""
    if not getattr(user, "is_authenticated", False):
        return Tenant.objects.none()
    if platform_role_of(user) == PlatformRole.SYSTEM_ADMIN:
        return Tenant.objects.all()
    return tenants_with_role(user, *READERS)


def finance_tenants_for(user) -> QuerySet[Tenant]:
    """Tenants whose price plans, budgets and invoices the user may change or issue."""
    if not getattr(user, "is_authenticated", False):
        return Tenant.objects.none()
    if platform_role_of(user) == PlatformRole.SYSTEM_ADMIN:
        return Tenant.objects.all()
    return tenants_with_role(user, TenantRole.FINANCE)


def can_read_billing(user) -> bool:
    """Cached on the user object for the request, like its memberships: the usage page asks seven times."""
    if not hasattr(user, "_cc_reads_billing"):
        user._cc_reads_billing = billing_tenants_for(user).exists()
    return user._cc_reads_billing


def taught_courses(user) -> QuerySet[Course]:
    if not getattr(user, "is_authenticated", False):
        return Course.objects.none()
    return Course.objects.filter(taught_course_q(user), tenant__is_active=True)


def _teaches_a_course(user) -> bool:
    """Cached on the user object for the request, like ``can_read_billing``."""
    if not hasattr(user, "_cc_teaches_a_course"):
        user._cc_teaches_a_course = taught_courses(user).exists()
    return user._cc_teaches_a_course


def can_see_usage(user) -> bool:
    """Billing readers see their tenants' usage, teachers their courses', every member their own."""
    if not getattr(user, "is_authenticated", False):
        return False
    return can_read_billing(user) or _teaches_a_course(user) or user.memberships.filter(tenant__is_active=True).exists()


def invoice_list_for(user) -> QuerySet[Invoice]:
    money = DecimalField(max_digits=14, decimal_places=2)
    credited = (
        CreditNote.objects.filter(invoice=OuterRef("pk"))
        .order_by()
        .values("invoice")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return (
        Invoice.objects.filter(tenant__in=billing_tenants_for(user))
        .select_related("tenant")
        # A subquery per invoice, not a join of every credit note grouped by invoice: a page's keys are
        # read without it (common/api/pagination.py), and only the page's invoices sum their notes.
        .annotate(credited_total=Coalesce(Subquery(credited), Value(Decimal("0")), output_field=money))
        .order_by("-month", "-number")
    )


def invoice_get_for(user, pk) -> Invoice:
    return invoice_list_for(user).get(pk=pk)


def price_plan_list_for(user) -> QuerySet[PricePlan]:
    """Plans of the tenants the user reads billing for, and of their ancestors (whose rates they inherit)."""
    tenants = list(billing_tenants_for(user).only("path"))
    if not tenants:
        return PricePlan.objects.none()
    paths = {path for tenant in tenants for path in tenant.ancestor_paths()}
    condition = Q(tenant__path__in=paths)
    for tenant in tenants:
        condition |= Q(tenant__path__startswith=tenant.path)
    return (
        PricePlan.objects.filter(condition)
        .select_related("tenant", "created_by")
        .prefetch_related("rates")
        .order_by("tenant__path", "-effective_from")
    )


def budget_list_for(user) -> QuerySet[Budget]:
    return Budget.objects.filter(tenant__in=billing_tenants_for(user)).select_related("tenant", "course")


# --- usage ------------------------------------------------------------------------------------


def _billed_rows_for(user, model) -> QuerySet:
    """Rows of ``model`` (usage, or an open interval) of the user's own, of the tenants whose bills the
    user reads and of the courses they teach."""
    if not getattr(user, "is_authenticated", False):
        return model.objects.none()
    condition = Q(user=user)  # one's own usage and open intervals, always
    if can_read_billing(user):
        condition |= Q(tenant__in=billing_tenants_for(user))
    if _teaches_a_course(user):
        condition |= Q(course__in=taught_courses(user))
    return model.objects.filter(condition)


def usage_queryset_for(user) -> QuerySet[UsageInterval]:
    return _billed_rows_for(user, UsageInterval)


def cursor_queryset_for(user, model=MeterCursor) -> QuerySet:
    """Open intervals (of desktops, or another of ``CURSOR_MODELS``: detached volumes, elastic IPs) the user may see."""
    return _billed_rows_for(user, model)


def date_range_parse(start, end) -> tuple[date, date]:
    """Inclusive [start, end] local dates from input; reversed or too long ranges are InvalidInput."""

    def parse(value, name):
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput(
                _("日期格式应为 YYYY-MM-DD。"), code=BillingError.DATE_INVALID, detail={name: str(value)}
            )

    first, last = parse(start, "from"), parse(end, "to")
    if last < first:
        raise InvalidInput(
            _("结束日期早于开始日期。"),
            code=BillingError.DATE_RANGE_REVERSED,
            detail={"from": str(first), "to": str(last)},
        )
    if (last - first).days > MAX_RANGE_DAYS:
        raise InvalidInput(_("日期范围不能超过 400 天。"), code=BillingError.DATE_RANGE_TOO_LONG)
    return first, last


def _open_rows(
    cursors, *, start: datetime, end: datetime, keys=("tenant_id", "course_id", "user_id"), changes=None
) -> list:
    """Usage rows of still-open intervals, cut at ``end`` (now) as if closed there; nothing is written.

    Cut like closed usage (``pricing.usage_rows``): at local midnights and where a rate changes
    (``changes``: ``pricing.rate_changes`` of [start, end) or of a longer time, read here when not given).
    """
    rows = []
    for cursor in cursors:
        allocation = metering.Allocation(**{n: getattr(cursor, n) for n in metering.ALLOCATION_FIELDS})
        if not allocation.billable:
            continue
        if changes is None:
            changes = pricing.rate_changes(start, end)
        for day, piece_start, piece_end in metering.split_by_day(max(cursor.since, start), end):
            for lo, hi in pricing.cut_at(piece_start, piece_end, changes):
                row = {k: getattr(cursor, k) for k in keys}
                row.update({name: getattr(cursor, name) for name in pricing.CONFIG_FIELDS})
                row.update(day=day, at=lo, duration_us=metering.duration_us(lo, hi))
                rows.append(row)
    return rows


@dataclass
class UsageRow:
    tenant: object
    course: object
    user: object
    item: str
    quantity: Decimal
    cost: Decimal

    @property
    def unit(self) -> str:
        return str(UNITS[Item(self.item)])

    @property
    def item_label(self) -> str:
        return str(Item(self.item).label)


@dataclass
class UsageReport:
    first: date
    last: date
    group_by: str
    rows: list
    daily: list  # [(day, cost)], every day of the range
    total: Decimal


def _report_sources(user, *, tenant_slug: str, course_id):
    """The user's closed usage and open meter cursors (desktops', volumes', elastic IPs'), narrowed to a tenant's
    subtree and a course when asked."""
    queryset = usage_queryset_for(user)
    cursor_sets = [cursor_queryset_for(user, model) for model in CURSOR_MODELS]
    if tenant_slug:
        queryset = queryset.filter(tenant__path__contains=f"/{tenant_slug}/")
        cursor_sets = [c.filter(tenant__path__contains=f"/{tenant_slug}/") for c in cursor_sets]
    if course_id not in (None, ""):
        try:
            course_id = int(course_id)
        except (TypeError, ValueError):
            raise InvalidInput(_("课程编号无效。"), code=BillingError.COURSE_INVALID)
        queryset = queryset.filter(course_id=course_id)
        cursor_sets = [c.filter(course_id=course_id) for c in cursor_sets]
    return queryset, cursor_sets


def _report_open_rows(cursor_sets, *, first: date, last: date, now: datetime, keys, changes) -> list:
    """Usage rows of the intervals still open, up to now, within the report's days."""
    range_start, range_end = metering.local_midnight(first), metering.local_midnight(last + timedelta(days=1))
    open_rows = []
    if range_start < now:
        for cursors in cursor_sets:
            open_cursors = cursors.filter(since__lt=min(now, range_end))
            open_rows += _open_rows(
                open_cursors, start=range_start, end=min(now, range_end), keys=keys, changes=changes
            )
    return open_rows


def _report_costs(daily_rows, group_rows, *, group_by: str, book) -> tuple[dict, dict]:
    """Cost per day, and (units, cost) per report line: (tenant, course, user, item)."""

    def cost_items(row):
        for item, units in metering.unit_microseconds(row).items():
            if units:
                rate, discount = book.rate(row["tenant_id"], item, row["at"])
                yield item, units, pricing.cost_of(units, item, rate, discount)

    daily: dict = defaultdict(Fraction)
    for row in daily_rows:
        for _item, _units, cost in cost_items(row):
            daily[row["day"]] += cost
    groups: dict = defaultdict(lambda: [0, Fraction(0)])
    for row in group_rows:
        for item, units, cost in cost_items(row):
            key = (row["tenant_id"] if group_by != "item" else None, row.get("course_id"), row.get("user_id"), item)
            groups[key][0] += units
            groups[key][1] += cost
    return daily, groups


def _report_lines(groups: dict, tenants: dict) -> list[UsageRow]:
    """The report's lines, by tenant path, course code, username and item."""
    courses = Course.objects.in_bulk({k[1] for k in groups if k[1]})
    users = User.objects.in_bulk({k[2] for k in groups if k[2]})
    result = [
        UsageRow(
            tenant=tenants.get(t),
            course=courses.get(c),
            user=users.get(u),
            item=item,
            quantity=pricing.to_quantity(units, item),
            cost=pricing.to_money(cost),
        )
        for (t, c, u, item), (units, cost) in groups.items()
    ]
    result.sort(
        key=lambda r: (
            r.tenant.path if r.tenant else "",
            r.course.code if r.course else "~",
            r.user.username if r.user else "",
            pricing.ITEMS.index(r.item),
        )
    )
    return result


def usage_report_for(
    user, *, start, end, group_by: str = "course", tenant_slug: str = "", course_id=None, now=None
) -> UsageReport:
    """Usage by tenant, course, user or item over [start, end] (local dates), with its cost per day.

    Costs are at the rates in force each hour, after plan discounts and before free
    allowances (which only invoices apply, per term); today's open intervals count up to now.
    """
    first, last = date_range_parse(start, end)
    if group_by not in GROUPS:
        raise InvalidInput(_("分组方式只能是 tenant、course、user 或 item。"), code=BillingError.GROUP_BY_INVALID)
    now = now or timezone.now()
    queryset, cursor_sets = _report_sources(user, tenant_slug=tenant_slug, course_id=course_id)
    # Group in the database only by what the report shows (and what prices depend on: tenant, time).
    keys = ("tenant_id", *{"course": ("course_id",), "user": ("user_id",)}.get(group_by, ()))
    following = last + timedelta(days=1)
    # Where rates change in the report's days, read once for the closed usage and the open intervals alike.
    changes = pricing.rate_changes(metering.local_midnight(first), metering.local_midnight(following))
    open_rows = _report_open_rows(cursor_sets, first=first, last=last, now=now, keys=keys, changes=changes)
    daily_rows = [
        *pricing.usage_rows(queryset, "tenant_id", first=first, following=following, changes=changes),
        *open_rows,
    ]
    # Rates change only where a plan takes effect: the days between two changes are summed in the database.
    group_rows = [
        *pricing.usage_rows(queryset, *keys, first=first, following=following, stretches=True, changes=changes),
        *open_rows,
    ]
    tenants = Tenant.objects.in_bulk({row["tenant_id"] for row in daily_rows})
    daily, groups = _report_costs(daily_rows, group_rows, group_by=group_by, book=pricing.RateBook(tenants.values()))
    result = _report_lines(groups, tenants)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return UsageReport(
        first=first,
        last=last,
        group_by=group_by,
        rows=result,
        daily=[(day, pricing.to_money(daily.get(day, Fraction(0)))) for day in days],
        total=sum((r.cost for r in result), Decimal("0")),
    )


# --- running estimate and budgets ----------------------------------------------------------------


def month_drafts(tenants, *, now: datetime | None = None) -> list:
    """This month's invoices so far (with allowances), per tenant, open intervals counted up to now."""
    now = now or timezone.now()
    month = timezone.localtime(now).date().replace(day=1)
    first, following = pricing.month_days(month)
    start = metering.local_midnight(first)
    tenants = list(tenants)
    ids = [t.pk for t in tenants]
    rows_by_tenant: dict = defaultdict(list)
    changes = pricing.rate_changes(start, metering.local_midnight(following))  # read once for all the rows
    for row in pricing.usage_rows(
        UsageInterval.objects.filter(tenant_id__in=ids),
        "tenant_id",
        "course_id",
        first=first,
        following=following,
        changes=changes,
    ):
        rows_by_tenant[row["tenant_id"]].append(row)
    for model in CURSOR_MODELS:
        cursors = model.objects.filter(tenant_id__in=ids, since__lt=now)
        for row in _open_rows(cursors, start=start, end=now, changes=changes):
            rows_by_tenant[row["tenant_id"]].append(row)
    book = pricing.RateBook(tenants)
    courses = Course.objects.in_bulk(
        {row["course_id"] for rows in rows_by_tenant.values() for row in rows if row["course_id"]}
    )
    # What the courses used before this month counts against their free allowances: one query for them all.
    allowed = [t for t in tenants if book.has_allowances(t.pk)]
    course_ids = {row["course_id"] for t in allowed for row in rows_by_tenant[t.pk] if row["course_id"] in courses}
    term_units = pricing.term_units_before([courses[pk] for pk in course_ids], first)
    return [
        pricing.draft_for(
            tenant=t, month=first, rows=rows_by_tenant[t.pk], book=book, courses=courses, term_units=term_units
        )
        for t in tenants
        if rows_by_tenant.get(t.pk)
    ]


# How long a running estimate is kept for the same tenants: it prices the month's usage of every tenant whose
# bills the reader reads (a query that grows with the month), and the dashboard and the usage page ask for it
# on every visit. A kept estimate lacks at most what was used in these seconds; budgets are never read from it.
ESTIMATE_SECONDS = 30


def estimate_for(user, *, now=None) -> list:
    """This month's running estimate of each tenant whose bills ``user`` reads, by path.

    Without ``now`` it is kept ESTIMATE_SECONDS per month and set of tenants: readers of the same bills
    share it, no one is given another set's."""
    tenants = billing_tenants_for(user).order_by("path")
    if now is not None:
        return month_drafts(tenants, now=now)
    tenants = list(tenants)
    if not tenants:
        return []
    month = timezone.localdate().replace(day=1)
    which = f"{month:%Y-%m}:" + ",".join(str(t.pk) for t in tenants)
    key = "billing-estimate:" + hashlib.sha256(which.encode()).hexdigest()
    drafts = cache.get(key)
    if drafts is None:
        drafts = month_drafts(tenants)
        cache.set(key, drafts, ESTIMATE_SECONDS)
    return drafts


def budget_spent(budget: Budget, *, now=None) -> Decimal:
    """This month's spend so far within a budget's scope (a tenant with its children, or one course)."""
    if budget.course_id:
        drafts = month_drafts([budget.tenant], now=now)
        return sum(
            (line.amount for d in drafts for line in d.lines if line.course_id == budget.course_id), Decimal("0")
        )
    subtree = Tenant.objects.filter(path__startswith=budget.tenant.path)
    return sum((d.total for d in month_drafts(subtree, now=now)), Decimal("0"))


def budget_blocks(tenant, course=None, *, now=None) -> Budget | None:
    """The blocking budget a new desktop of ``tenant`` (and ``course``) would exceed, or None.

    Budgets of the tenant, of its ancestors (their subtree includes it) and of the course count.
    """
    scope = Q(tenant__path__in=tenant.ancestor_paths(), course__isnull=True)
    if course is not None:
        scope |= Q(course=course)
    for budget in Budget.objects.filter(scope, block_new_desktops=True).select_related("tenant", "course"):
        if budget_spent(budget, now=now) >= budget.amount:
            return budget
    return None

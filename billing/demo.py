"""Demo data of billing: price plans (the university's, inherited by cs and me; cs overrides vCPU
from noon of last month's 16th, so that day is priced at two rates), a free allowance, a budget,
and last month's usage of the demo desktops at their class times, so `issue_invoices --month
<last month>` has something to issue.

Idempotent. Last month's usage is generated as intervals directly (the desktops did not exist
then): each CS101 desktop is allocated all month (its disk and address) and runs during the
course's weekly class times. With no demo desktops (no hypervisor), the roster's students get
the same usage without a desktop row.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import metering, services
from billing.models import Budget, FreeAllowance, PricePlan, UsageInterval
from compute.models import Desktop
from tenants.models import ClassTime, Course, Tenant

UNIVERSITY_RATES = {"vcpu": "0.05", "ram": "0.01", "disk": "0.0003", "gpu": "2.00", "ip": "0.002"}
CS_VCPU_RATE = "0.06"
FALLBACK_SIZES = {"vcpus": 2, "ram_mib": 4096, "disk_gib": 40}


def _last_month() -> date:
    return (timezone.localdate().replace(day=1) - timedelta(days=1)).replace(day=1)


def _plans(university: Tenant, cs: Tenant | None, month: date) -> int:
    made = 0
    start = date(month.year - 1, 1, 1)
    if not PricePlan.objects.filter(tenant=university).exists():
        services.price_plan_create(
            actor=None, tenant=university, name="校级标准价", effective_from=start, rates=UNIVERSITY_RATES
        )
        made += 1
    if cs is not None and not PricePlan.objects.filter(tenant=cs).exists():
        services.price_plan_create(
            actor=None,
            tenant=cs,
            name="计算机学院 vCPU 调价",
            effective_from=datetime.combine(month.replace(day=16), time(12), tzinfo=metering.local_zone()),
            rates={"vcpu": CS_VCPU_RATE},
        )
        made += 1
    if not FreeAllowance.objects.filter(tenant=university).exists():
        services.allowance_set(actor=None, tenant=university, item="vcpu", hours=Decimal("200"))
    if cs is not None and not Budget.objects.filter(tenant=cs, course__isnull=True).exists():
        services.budget_set(actor=None, tenant=cs, amount=Decimal("5000"))
    return made


def _class_slots(course: Course, month: date) -> list[tuple[datetime, datetime]]:
    """[start, end) of every class of the course in the month (local time)."""
    times = list(ClassTime.objects.filter(course=course)) or [
        ClassTime(weekday=1, start_time=time(8), end_time=time(9, 40)),
        ClassTime(weekday=3, start_time=time(14), end_time=time(15, 40)),
    ]
    zone = metering.local_zone()
    slots = []
    day = month
    while day.month == month.month:
        for slot in times:
            if day.isoweekday() == slot.weekday:
                slots.append(
                    (
                        datetime.combine(day, slot.start_time, tzinfo=zone),
                        datetime.combine(day, slot.end_time, tzinfo=zone),
                    )
                )
        day += timedelta(days=1)
    return sorted(slots)


def month_rows(*, who: dict, sizes: dict, slots, month: date, desktop_id=None) -> list[UsageInterval]:
    """A month of one desktop: allocated throughout, running in ``slots``, as usage pieces."""
    start, end = metering.month_bounds(month)
    segments, cursor = [], start
    for slot_start, slot_end in slots:
        if slot_start > cursor:
            segments.append((cursor, slot_start, False))
        segments.append((slot_start, slot_end, True))
        cursor = slot_end
    if cursor < end:
        segments.append((cursor, end, False))
    rows = []
    for seg_start, seg_end, running in segments:
        allocation = metering.Allocation(
            **who,
            running=running,
            vcpus=sizes["vcpus"] if running else 0,
            ram_mib=sizes["ram_mib"] if running else 0,
            disk_gib=sizes["disk_gib"],
            ips=1,
        )
        for day, piece_start, piece_end in metering.split_by_day(seg_start, seg_end):
            rows.append(
                UsageInterval(
                    desktop_id=desktop_id,
                    day=day,
                    start=piece_start,
                    end=piece_end,
                    duration_us=metering.duration_us(piece_start, piece_end),
                    **allocation.fields(),
                )
            )
    return rows


def _usage(month: date) -> int:
    first, following = month, (month + timedelta(days=32)).replace(day=1)
    if UsageInterval.objects.filter(day__gte=first, day__lt=following).exists():
        return 0
    rows = []
    desktops = list(
        Desktop.objects.filter(tenant__slug__in=["cs", "me"])
        .exclude(state=Desktop.State.DELETED)
        .select_related("course")
    )
    for desktop in desktops:
        rows += month_rows(
            who={"tenant_id": desktop.tenant_id, "course_id": desktop.course_id, "user_id": desktop.owner_id},
            sizes={"vcpus": desktop.vcpus, "ram_mib": desktop.memory_mib, "disk_gib": desktop.disk_gib or 20},
            slots=_class_slots(desktop.course, month) if desktop.course_id else [],
            month=month,
            desktop_id=desktop.pk,
        )
    if not desktops:
        for course in Course.objects.filter(tenant__slug__in=["cs", "me"]).prefetch_related("roster"):
            slots = _class_slots(course, month)
            for entry in course.roster.all():
                rows += month_rows(
                    who={"tenant_id": course.tenant_id, "course_id": course.pk, "user_id": entry.user_id},
                    sizes=FALLBACK_SIZES,
                    slots=slots,
                    month=month,
                )
    UsageInterval.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def seed() -> dict:
    university = Tenant.objects.filter(slug="university").first()
    if university is None:
        return {"price_plans": "skipped: no demo tenant"}
    month = _last_month()
    with transaction.atomic():
        plans = _plans(university, Tenant.objects.filter(slug="cs").first(), month)
        pieces = _usage(month)
    # Last month's invoices, as the periodic task on the 1st would have issued them (idempotent).
    issued = services.invoices_issue(month=month)
    return {
        "price_plans": PricePlan.objects.count(),
        "plans_created": plans,
        "usage_pieces": pieces,
        "month": month.strftime("%Y-%m"),
        "invoices_issued": len(issued.issued),
    }

"""More rows for bench/api.py: course pools of 60 seats, networks, usage intervals, invoices.

Each ``grow_*(world, count)`` adds ``count`` rows in bulk (bench/rows.py's batches); the world
dict of bench/rows.py carries the counters and the ids a path names (``world["ids"]``).
"""

import datetime
from decimal import Decimal

from django.utils import timezone

SEATS_PER_POOL = 60


def _course_and_image(world: dict):
    """The course and golden image the bench's pools share (made on first use)."""
    if "course" not in world:
        from compute.models import Image, ImageVersion
        from tenants.models import Course

        today = timezone.localdate()
        world["course"] = Course.objects.create(
            tenant=world["tenant"],
            code="BENCH101",
            name="基准课程",
            teacher=world["admin"],
            term_start=today - datetime.timedelta(days=60),
            term_end=today + datetime.timedelta(days=60),
        )
        image = Image.objects.create(name="bench-golden")
        world["image_version"] = ImageVersion.objects.create(
            image=image, version=1, endpoint=world["endpoint"], status=ImageVersion.Status.READY
        )
    return world["course"], world["image_version"]


def _students(world: dict, start: int, count: int) -> list:
    from bench.rows import BATCH
    from tenants.models import Membership, User
    from tenants.roles import TenantRole

    names = [f"bench_s{n:06d}" for n in range(start, start + count)]
    User.objects.bulk_create(
        [User(username=name, display_name=f"学生{name[-6:]}", student_number=name[-6:]) for name in names],
        batch_size=BATCH,
    )
    users = list(User.objects.filter(username__in=names).order_by("username"))
    Membership.objects.bulk_create(
        [Membership(user=u, tenant=world["tenant"], role=TenantRole.STUDENT) for u in users], batch_size=BATCH
    )
    return users


def grow_seats(world: dict, count: int) -> None:
    """``count`` students, each with a desktop and a seat, in pools of 60 (a class each)."""
    from bench.rows import BATCH
    from compute.classroom.models import DesktopPool, Seat
    from compute.models import Desktop

    course, version = _course_and_image(world)
    start = world.setdefault("seats", 0)
    world["seats"] += count
    users = _students(world, start, count)
    Desktop.objects.bulk_create(
        [
            Desktop(
                name=f"seat-{start + i}",
                vm_name=f"bench-seat-{start + i}",
                tenant=world["tenant"],
                owner=user,
                course=course,
                image_version=version,
                flavor=world["flavor"],
                endpoint=world["endpoint"],
                vcpus=2,
                memory_mib=4096,
                disk_gib=40,
                state=Desktop.State.STOPPED,
            )
            for i, user in enumerate(users)
        ],
        batch_size=BATCH,
    )
    desktops = dict(Desktop.objects.filter(owner__in=users, course=course).values_list("owner_id", "pk"))
    pools = {}
    for index in range(start // SEATS_PER_POOL, (start + count - 1) // SEATS_PER_POOL + 1):
        pools[index] = DesktopPool.objects.get_or_create(
            course=course,
            name=f"班级 {index}",
            defaults={"tenant": world["tenant"], "image_version": version, "flavor": world["flavor"]},
        )[0]
    world.setdefault("ids", {}).setdefault("pool", pools[start // SEATS_PER_POOL].pk)
    Seat.objects.bulk_create(
        [
            Seat(pool=pools[(start + i) // SEATS_PER_POOL], student=user, desktop_id=desktops.get(user.pk))
            for i, user in enumerate(users)
        ],
        batch_size=BATCH,
    )


def grow_networks(world: dict, count: int) -> None:
    from bench.rows import BATCH
    from network.models import Network

    start = world.setdefault("networks", 0)
    world["networks"] += count
    Network.objects.bulk_create(
        [Network(tenant=world["tenant"], name=f"net-{n}") for n in range(start, start + count)], batch_size=BATCH
    )


def grow_usage(world: dict, count: int) -> None:
    """Closed usage pieces of this month, a minute each, spread over its days so far."""
    from bench.rows import BATCH
    from billing.models import UsageInterval

    today = timezone.localdate()
    days = [today.replace(day=d) for d in range(1, today.day + 1)]
    rows = []
    for n in range(count):
        day = days[n % len(days)]
        start = timezone.make_aware(datetime.datetime.combine(day, datetime.time(0, 0))) + datetime.timedelta(
            seconds=60 * ((n // len(days)) % 1000)
        )
        rows.append(
            UsageInterval(
                tenant=world["tenant"],
                course=world.get("course"),
                user=world["student"],
                day=day,
                start=start,
                end=start + datetime.timedelta(seconds=60),
                duration_us=60_000_000,
                running=bool(n % 2),
                vcpus=2,
                ram_mib=4096,
                disk_gib=40,
            )
        )
    UsageInterval.objects.bulk_create(rows, batch_size=BATCH)


def grow_invoices(world: dict, count: int) -> None:
    """Invoices of sub-tenants of the bench tenant (one per tenant and month: 120 months each)."""
    from bench.rows import BATCH
    from billing.models import Invoice
    from tenants.models import Tenant

    start = world.setdefault("invoices", 0)
    world["invoices"] += count
    tenants: dict[int, Tenant] = world.setdefault("invoice_tenants", {})
    rows = []
    for n in range(start, start + count):
        index, months = divmod(n, 120)
        if index not in tenants:
            tenants[index] = Tenant.objects.create(
                slug=f"bench-t{index}",
                name_zh=f"基准系 {index}",
                parent=world["tenant"],
                path=f"{world['tenant'].path}bench-t{index}/",
            )
        month = datetime.date(2010 + months // 12, months % 12 + 1, 1)
        rows.append(
            Invoice(
                tenant=tenants[index],
                month=month,
                number=f"B{n:09d}",
                total=Decimal("12.50"),
                issued_at=timezone.now(),
                issued_by=world["admin"],
            )
        )
    Invoice.objects.bulk_create(rows, batch_size=BATCH)

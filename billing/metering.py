"""Metering from state intervals: what a desktop, a data disk or an elastic IP holds, and how it is cut into pieces.

A desktop holds, while it exists (provisioned and not deleted): its system disk and
attached data disks (GiB) and its IP addresses, running or not; and while it runs: its
vCPUs, RAM and GPUs. What it holds is read from its saved rows (``allocation_of``), never
from why it changed, so any change compute reports is metered the same way.

A data disk outlives its desktop: while no desktop holds it (detached, being deleted, or
on its way to another desktop) it is metered on its own (``volume_allocation_of``), for
the tenant and user that keep it. The two are complementary by the volume's state, so a
disk is counted by its desktop or by itself, never by both.

An elastic IP is held by its tenant from its allocation to its release, bound to a desktop's
NIC or not, and the "ips" quota counts it all that time: it is metered on its own, one
address from ``elastic_ip_allocation_of`` (network reports the allocation and the release),
and a desktop never counts it (``ips_of``). That is simpler than metering it through the
desktop while bound and by itself while not: a binding changes no meter, and no desktop
state (deleted with the EIP still bound, failed, not yet made) can leave a gap or count it twice.

Hour and month boundaries. Usage is charged as if cut at every hour and month boundary,
each hour at the rate in force then. Storing a row per desktop and hour would be 7 million
rows a month for 10,000 desktops, so an interval of one allocation is stored cut only at
every local midnight (Asia/Shanghai, the portal's TIME_ZONE): a piece lies within one day,
hence one month, and a desktop running across the midnight of the 1st is charged in both
months, in part. Rates change only on whole hours, and ``billing.pricing.usage_rows`` cuts
a day's pieces where a rate changes when it prices them; the other hour boundaries change
nothing. Quantities are exact: microseconds times amounts, never rounded to hours.

These functions are pure (no database writes); ``billing.services`` writes with them.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from billing.models import Item

US_PER_HOUR = 3_600_000_000
MIB_PER_GIB = 1024


def local_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def local_midnight(day: date) -> datetime:
    """The instant a local day starts, as an aware datetime."""
    return datetime.combine(day, time(0), tzinfo=local_zone())


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a local month."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return local_midnight(first), local_midnight(following)


@dataclass(frozen=True)
class Allocation:
    """What a desktop holds at one moment, and for whom."""

    tenant_id: int | None
    course_id: int | None
    user_id: int | None
    running: bool = False
    vcpus: int = 0
    ram_mib: int = 0
    disk_gib: int = 0
    gpus: int = 0
    ips: int = 0

    @property
    def billable(self) -> bool:
        return self.tenant_id is not None and (
            self.disk_gib > 0 or self.ips > 0 or (self.running and (self.vcpus or self.ram_mib or self.gpus))
        )

    def fields(self) -> dict:
        return {
            "tenant_id": self.tenant_id,
            "course_id": self.course_id,
            "user_id": self.user_id,
            "running": self.running,
            "vcpus": self.vcpus,
            "ram_mib": self.ram_mib,
            "disk_gib": self.disk_gib,
            "gpus": self.gpus,
            "ips": self.ips,
        }


ALLOCATION_FIELDS = tuple(Allocation.__dataclass_fields__)
# Data disks count while they exist on the hypervisor: attached, or on their way off.
BILLED_VOLUME_STATES = ("attached", "detaching")


def allocation_of(desktop, *, volumes=None) -> Allocation:
    """What ``desktop`` (a compute.Desktop row) holds now, read from its saved state.

    ``volumes`` (its data disks) may be given when read for many desktops at once; otherwise
    they are read here."""
    who = {"tenant_id": desktop.tenant_id, "course_id": desktop.course_id, "user_id": desktop.owner_id}
    state = desktop.state
    # Not yet made, gone, or failed while being made (the quota was released): nothing is held.
    if state in ("requested", "deleted") or (state == "error" and not desktop.quota_reservation):
        return Allocation(**who)
    running = desktop.power_state == "running"
    disks = desktop.volumes.all() if volumes is None else volumes
    data_gib = sum(v.size_gib for v in disks if v.state in BILLED_VOLUME_STATES)
    return Allocation(
        **who,
        running=running,
        vcpus=desktop.vcpus if running else 0,
        ram_mib=desktop.memory_mib if running else 0,
        gpus=desktop.gpus if running else 0,
        disk_gib=desktop.disk_gib + data_gib,
        ips=ips_of(desktop),
    )


def volume_allocation_of(volume) -> Allocation:
    """What a data disk (a compute.Volume row) holds on its own now: its GiB while no desktop counts it.

    A desktop counts it in BILLED_VOLUME_STATES. Otherwise it holds its size while it exists:
    detached and being deleted; attaching or in error only when the disk was made (it has a
    path), i.e. a kept disk moving to a desktop or stuck half-way. A new disk still being made
    holds nothing yet, as a desktop holds nothing before it is provisioned.
    """
    who = {"tenant_id": volume.tenant_id, "course_id": None, "user_id": volume.owner_id}
    state = volume.state
    if state in BILLED_VOLUME_STATES or state == "deleted":
        return Allocation(**who)
    if state in ("attaching", "error") and not volume.path:
        return Allocation(**who)
    return Allocation(**who, disk_gib=volume.size_gib)


def elastic_ip_allocation_of(eip, *, held: bool) -> Allocation:
    """What an elastic IP (a network.ElasticIP row) holds: one address of its tenant while ``held``
    (allocated and not released), bound or not. No user or course: the tenant's network admin
    allocates it for the tenant, whose quota it takes."""
    return Allocation(tenant_id=eip.tenant_id, course_id=None, user_id=None, ips=1 if held else 0)


def ips_of(desktop) -> int:
    """Addresses a desktop holds: those its NICs report (else the one recorded on the row).

    Elastic IPs bound to its NICs are not among them: each is metered on its own
    (``elastic_ip_allocation_of``), so it is counted once whether it is bound or not."""
    nics = (desktop.hardware or {}).get("nics") or []
    addresses = {nic.get("ip") for nic in nics if isinstance(nic, dict) and nic.get("ip")}
    if desktop.guest_ip:
        addresses.add(desktop.guest_ip)
    return len(addresses)


def split_by_day(start: datetime, end: datetime) -> list[tuple[date, datetime, datetime]]:
    """[start, end) cut at every local midnight: (local day, piece start, piece end)."""
    zone = local_zone()
    pieces = []
    cursor = start
    while cursor < end:
        day = cursor.astimezone(zone).date()
        boundary = local_midnight(day + timedelta(days=1))
        piece_end = min(end, boundary)
        pieces.append((day, cursor, piece_end))
        cursor = piece_end
    return pieces


def duration_us(start: datetime, end: datetime) -> int:
    delta = end - start
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def unit_microseconds(row) -> dict[str, int]:
    """Quantities of one piece (an object or dict with the allocation fields) in unit-microseconds.

    RAM is in MiB-microseconds here; ``hours()`` turns every item into unit-hours.
    """
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    us = get("duration_us")
    running = bool(get("running"))
    return {
        Item.VCPU: us * get("vcpus") if running else 0,
        Item.RAM: us * get("ram_mib") if running else 0,
        Item.DISK: us * get("disk_gib"),
        Item.GPU: us * get("gpus") if running else 0,
        Item.IP: us * get("ips"),
    }


def divisor(item: str) -> int:
    """Unit-microseconds per unit-hour of an item."""
    return US_PER_HOUR * (MIB_PER_GIB if item == Item.RAM else 1)

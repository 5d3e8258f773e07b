"""The one place compute talks to the tenants app's quotas: reserve, commit, release a desktop's share.

A desktop reserves its vCPU, memory (exactly, in MiB), disk, GPUs, one desktop and one IP
address per NIC when it is requested, commits them when the VM exists, and releases them
when it is deleted or fails for good. The addresses are the ones billing meters as IP-hours
(billing.metering.ips_of): a desktop's NIC address, held while it exists, running or not;
an elastic IP takes its own address from the quota when it is allocated (network).
Over quota, ``tenants.quotas.QuotaExceeded`` (409 ``quota_exceeded``, with the shortfalls)
reaches the caller unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from compute.models import Desktop, Flavor
from tenants.models import Reservation
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_check
from tenants.services import (
    quota_charge_existing,
    quota_commit,
    quota_commit_ids,
    quota_release,
    quota_reserve,
    quota_reserve_many,
)

if TYPE_CHECKING:
    from tenants.models import Tenant, User


def desktop_amounts(*, vcpus: int, memory_mib: int, disk_gib: int, gpus: int, nics: int = 1) -> dict[str, int]:
    """What one desktop takes from the quotas: its memory exactly, in MiB (a 256 MiB desktop takes 256 MiB),
    and an address per NIC (a desktop made here has one: compute.networking.desktop_nics_allocate)."""
    return {
        "vcpu": vcpus,
        "ram_mib": memory_mib,
        "disk_gib": disk_gib,
        "gpus": gpus,
        "desktops": 1,
        "ips": max(1, nics),
    }


def nics_of(desktop: Desktop) -> int:
    """The NICs a desktop has as the hypervisor reported them (an imported VM may have several); one
    before any report."""
    nics = (desktop.hardware or {}).get("nics") or []
    return max(1, len(nics))


def flavor_share(flavor: Flavor, *, count: int = 1) -> ResourceAmounts:
    """What ``count`` desktops of this flavor take from the quotas, as ``desktop_quota_reserve`` reserves them
    (for checking a whole pool's seats before any is made)."""
    one = desktop_amounts(vcpus=flavor.vcpus, memory_mib=flavor.memory_mib, disk_gib=flavor.disk_gib, gpus=flavor.gpus)
    return ResourceAmounts(**one) * int(count)


def desktop_quota_reserve(*, actor: User | None, desktop: Desktop) -> str:
    """Reserve the desktop's resources for its tenant, course and owner; returns the reservation's id as
    stored on the desktop."""
    reservation = quota_reserve(
        actor=actor,
        tenant=desktop.tenant,
        course=desktop.course,
        user=desktop.owner,
        amounts=_amounts_of(desktop),
        reason="desktop",
    )
    return str(reservation.pk)


def desktops_quota_reserve(*, actor: User | None, desktops: list[Desktop]) -> list[str]:
    """``desktop_quota_reserve`` for desktops of one tenant and course (a batch of a pool's seats), at
    once: all reserved or QuotaExceeded. Their reservations' ids, in order."""
    first = desktops[0]
    reservations = quota_reserve_many(
        actor=actor,
        tenant=first.tenant,
        course=first.course,
        shares=[(desktop.owner, ResourceAmounts(**_amounts_of(desktop))) for desktop in desktops],
        reason="desktop",
    )
    return [str(reservation.pk) for reservation in reservations]


def volume_quota_reserve(*, actor: User, tenant: Tenant, owner: User | None, size_gib: int) -> str:
    """Reserve a data disk's size from the disk quota (committed once the disk exists)."""
    reservation = quota_reserve(actor=actor, tenant=tenant, user=owner, amounts={"disk_gib": size_gib}, reason="volume")
    return str(reservation.pk)


def _ids(reservation_ids: str) -> list[int]:
    """The reservations stored on a desktop: usually one id, "12,40" after a resize that could not be merged."""
    return [int(part) for part in reservation_ids.split(",") if part.strip()] if reservation_ids else []


def _reservations(reservation_ids: str) -> list[Reservation]:
    return list(Reservation.objects.filter(pk__in=_ids(reservation_ids)).order_by("pk"))


def desktop_quota_commit(*, reservation_id: str) -> None:
    # Locked as they are read (one statement per desktop fewer than reading them first).
    quota_commit_ids(reservation_ids=_ids(reservation_id))


def desktop_quota_release(*, reservation_id: str) -> None:
    for reservation in _reservations(reservation_id):
        quota_release(reservation=reservation)


def _amounts_of(desktop: Desktop) -> dict[str, int]:
    return desktop_amounts(
        vcpus=desktop.vcpus,
        memory_mib=desktop.memory_mib,
        disk_gib=desktop.disk_gib,
        gpus=desktop.gpus,
        nics=nics_of(desktop),
    )


def resize_quota_hold(*, actor: User, desktop: Desktop, vcpus: int, memory_mib: int, gpus: int) -> str:
    """Reserve what a resize adds (only the growth counts: the desktop already holds its current share).

    Raises QuotaExceeded when the growth does not fit; returns "" when nothing grows.
    """
    old = _amounts_of(desktop)
    new = desktop_amounts(
        vcpus=vcpus, memory_mib=memory_mib, disk_gib=desktop.disk_gib, gpus=gpus, nics=nics_of(desktop)
    )
    growth = {name: max(0, new[name] - old[name]) for name in old}
    if not any(growth.values()):
        return ""
    reservation = quota_reserve(
        actor=actor, tenant=desktop.tenant, course=desktop.course, user=desktop.owner, amounts=growth, reason="resize"
    )
    return str(reservation.pk)


def resize_quota_settle(*, desktop: Desktop, hold: str) -> str:
    """The resize happened: the desktop's share becomes its new size. Returns the ids to store on it.

    The old share and the growth are released and the new size reserved and committed in
    one step; it fits, since the growth was held. Only when a limit was lowered below the
    usage meanwhile does it not: then the old share stays and the growth is committed on
    top (the desktop is charged at least what it uses, never less).
    """
    if not desktop.quota_reservation:
        desktop_quota_commit(reservation_id=hold)
        return hold
    try:
        with transaction.atomic():
            desktop_quota_release(reservation_id=desktop.quota_reservation)
            desktop_quota_release(reservation_id=hold)
            reservation = quota_reserve(
                tenant=desktop.tenant,
                course=desktop.course,
                user=desktop.owner,
                amounts=_amounts_of(desktop),
                reason="desktop",
            )
            quota_commit(reservation=reservation)
    except QuotaExceeded:
        desktop_quota_commit(reservation_id=hold)
        return ",".join(filter(None, [desktop.quota_reservation, hold]))
    return str(reservation.pk)


def resize_quota_release(*, hold: str) -> None:
    """The resize failed: give the growth back."""
    desktop_quota_release(reservation_id=hold)


def imported_quota_charge_many(*, tenant: Tenant, shares: list[dict[str, int]]) -> list[str | None]:
    """Charge imported VMs' shares to the tenant (reserved and committed at once: the VMs exist), in
    one batch: each share's reservation id, or None for one that does not fit beside the ones before it."""
    charged = quota_charge_existing(
        tenant=tenant, shares=[ResourceAmounts(**share) for share in shares], reason="imported desktop"
    )
    return [str(reservation.pk) if reservation is not None else None for reservation in charged]


def imported_quota_preview(*, tenant: Tenant, shares: list[dict[str, int]]) -> list[str]:
    """For each share (desktop_amounts) in turn: "" when it would be charged, else why it would not fit."""
    result, fitted = [], ResourceAmounts()
    for share in shares:
        amounts = ResourceAmounts(**share)
        shortfalls = quota_check(tenant=tenant, amounts=fitted + amounts)
        if shortfalls:
            result.append(" ".join(s.message for s in shortfalls))
        else:
            fitted = fitted + amounts
            result.append("")
    return result

"""The one place compute talks to the tenants app's quotas: reserve, commit, release a desktop's share.

A desktop reserves its vCPU, memory, disk, GPUs and one desktop when it is requested,
commits them when the VM exists, and releases them when it is deleted or fails for good.
Over quota, ``tenants.quotas.QuotaExceeded`` (409 ``quota_exceeded``, with the shortfalls)
reaches the caller unchanged.
"""

from tenants.models import Reservation
from tenants.services import quota_commit, quota_release, quota_reserve


def desktop_amounts(*, vcpus: int, memory_mib: int, disk_gib: int, gpus: int) -> dict[str, int]:
    return {"vcpu": vcpus, "ram_gib": -(-memory_mib // 1024), "disk_gib": disk_gib, "gpus": gpus, "desktops": 1}


def desktop_quota_reserve(
    *, actor, tenant, course, owner, vcpus: int, memory_mib: int, disk_gib: int, gpus: int
) -> str:
    """Reserve one desktop's resources; returns the reservation's id as stored on the desktop."""
    reservation = quota_reserve(
        actor=actor,
        tenant=tenant,
        course=course,
        user=owner,
        amounts=desktop_amounts(vcpus=vcpus, memory_mib=memory_mib, disk_gib=disk_gib, gpus=gpus),
        reason="desktop",
    )
    return str(reservation.pk)


def _reservation(reservation_id: str) -> Reservation | None:
    return Reservation.objects.filter(pk=int(reservation_id)).first() if reservation_id else None


def desktop_quota_commit(*, reservation_id: str) -> None:
    reservation = _reservation(reservation_id)
    if reservation is not None:
        quota_commit(reservation=reservation)


def desktop_quota_release(*, reservation_id: str) -> None:
    reservation = _reservation(reservation_id)
    if reservation is not None:
        quota_release(reservation=reservation)

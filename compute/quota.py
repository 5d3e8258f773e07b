"""The one place compute talks to the tenants app's quotas: reserve, commit, release a desktop's share.

A desktop reserves its vCPU, memory, disk, GPUs and one desktop when it is requested,
commits them when the VM exists, and releases them when it is deleted or fails for good.
"""

from tenants import services as tenant_services


def _amounts(*, vcpus: int, memory_mib: int, disk_gib: int, gpus: int) -> dict[str, int]:
    return {
        "vcpu": vcpus,
        "ram_gib": -(-memory_mib // 1024),
        "disk_gib": disk_gib,
        "gpus": gpus,
        "desktops": 1,
    }


def desktop_quota_reserve(
    *, actor, tenant, course, owner, vcpus: int, memory_mib: int, disk_gib: int, gpus: int
) -> str:
    """Reserve one desktop's resources; raises the tenants app's quota error when over a limit.

    Returns the reservation's id ("" when the tenants app has no quota service).
    """
    reserve = getattr(tenant_services, "quota_reserve", None)
    if reserve is None:
        return ""
    reservation = reserve(
        actor=actor,
        tenant=tenant,
        course=course,
        user=owner,
        amounts=_amounts(vcpus=vcpus, memory_mib=memory_mib, disk_gib=disk_gib, gpus=gpus),
        reason="desktop",
    )
    return str(getattr(reservation, "pk", reservation) or "")


def _reservation(reservation_id: str):
    if not reservation_id:
        return None
    from tenants.models import Reservation

    return Reservation.objects.filter(pk=int(reservation_id)).first()


def desktop_quota_commit(*, reservation_id: str) -> None:
    commit = getattr(tenant_services, "quota_commit", None)
    reservation = _reservation(reservation_id)
    if commit is not None and reservation is not None:
        commit(reservation=reservation)


def desktop_quota_release(*, reservation_id: str) -> None:
    release = getattr(tenant_services, "quota_release", None)
    reservation = _reservation(reservation_id)
    if release is not None and reservation is not None:
        release(reservation=reservation)

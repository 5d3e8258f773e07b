"""Row locks of the tenants app: one named helper per model, the only places `select_for_update` is used.

Locks are taken in primary-key order so that two transactions locking overlapping sets of
rows queue behind each other instead of deadlocking.
"""

from django.db.models import Q

from tenants.models import ApprovalRequest, Quota, Reservation, User


def quota_rows_lock(*, tenant, course=None, user=None) -> list[Quota]:
    """Lock every quota that binds a scope: the tenant's and its ancestors', the course's, the user's."""
    return quota_rows_lock_for_users(tenant=tenant, course=course, users=[user] if user is not None else [])


def quota_rows_lock_for_users(*, tenant, course=None, users=()) -> list[Quota]:
    """Lock every quota that binds any of ``users``' desktops of the tenant (and course) at once: the
    tenant's and its ancestors', the course's, each user's (a batch of a pool's seats)."""
    condition = Q(scope=Quota.Scope.TENANT, tenant__path__in=tenant.ancestor_paths())
    if course is not None:
        condition |= Q(scope=Quota.Scope.COURSE, course=course)
    if users:
        condition |= Q(scope=Quota.Scope.USER, tenant=tenant, user__in=[u.pk for u in users])
    return list(Quota.objects.select_for_update().filter(condition).select_related("tenant").order_by("pk"))


def quota_row_lock(pk: int) -> Quota:
    return Quota.objects.select_for_update().select_related("tenant", "course", "user").get(pk=pk)


def reservation_lock(pk: int) -> Reservation:
    return Reservation.objects.select_for_update().select_related("tenant", "course", "user").get(pk=pk)


def reservations_lock(pks) -> list[Reservation]:
    """The reservations, locked in id order (one statement); ids of no reservation are left out."""
    return list(
        Reservation.objects.select_for_update()
        .filter(pk__in=list(pks))
        .select_related("tenant", "course", "user")
        .order_by("pk")
    )


def request_lock(pk: int) -> ApprovalRequest:
    return ApprovalRequest.objects.select_for_update().select_related("tenant", "course", "requester").get(pk=pk)


def user_lock(pk: int) -> User:
    """The account, while a role is given to it: two grants that must not meet (auditor and admin) queue."""
    return User.objects.select_for_update().get(pk=pk)

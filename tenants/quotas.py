"""Quotas: limits per tenant, course and user, and the reserve → commit → release cycle.

This is the API other apps call (compute reserves for desktops, network for IPs):

    reservation = quota_reserve(tenant=t, course=c, amounts=ResourceAmounts(vcpu=4, desktops=2), reason="...")
    quota_commit(reservation=reservation)     # provisioning succeeded
    quota_release(reservation=reservation)    # provisioning failed, or the resource was deleted
    quota_check(tenant=t, amounts=...)        # -> [Shortfall], empty when it fits

Every level binds: the user's quota, the course's, the tenant's and each ancestor tenant's.
A reservation locks the quota rows of its scope (tenants.locks.quota_rows_lock) before it
checks and adds, so N concurrent reservations against room for K let exactly K through.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, Sum
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput, InvalidTransition
from tenants import permissions
from tenants.errors import TenantsError
from tenants.locks import (
    quota_row_lock,
    quota_rows_lock,
    quota_rows_lock_for_users,
    reservation_lock,
    reservations_lock,
)
from tenants.models import (
    RESOURCE_LABELS,
    RESOURCES,
    Course,
    Membership,
    Quota,
    Reservation,
    Tenant,
    User,
    amount_label,
)
from tenants.roles import TenantRole

THRESHOLDS = (80, 100)


@dataclass(frozen=True)
class ResourceAmounts:
    """An amount of every quota resource. Zero means "none of it"."""

    vcpu: int = 0
    ram_mib: int = 0
    disk_gib: int = 0
    gpus: int = 0
    desktops: int = 0
    ips: int = 0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value < 0:
                raise InvalidInput(
                    _("资源数量必须是非负整数：%(name)s") % {"name": f.name}, code=TenantsError.INVALID_AMOUNT
                )

    @classmethod
    def of(cls, obj, prefix: str = "") -> "ResourceAmounts":
        """The amounts stored on a model row (a request, a reservation, a quota's used_ columns)."""
        return cls(**{name: getattr(obj, f"{prefix}{name}") or 0 for name in RESOURCES})

    @classmethod
    def from_dict(cls, data: dict) -> "ResourceAmounts":
        return cls(**{name: int(data.get(name) or 0) for name in RESOURCES})

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: "ResourceAmounts") -> "ResourceAmounts":
        return ResourceAmounts(**{n: getattr(self, n) + getattr(other, n) for n in RESOURCES})

    def __mul__(self, factor: int) -> "ResourceAmounts":
        return ResourceAmounts(**{n: getattr(self, n) * factor for n in RESOURCES})

    def is_zero(self) -> bool:
        return not any(self.as_dict().values())


@dataclass(frozen=True)
class Shortfall:
    """One resource of one quota that a request does not fit into."""

    quota_id: int
    scope: str
    scope_name: str
    resource: str
    requested: int
    available: int
    limit: int

    @property
    def short_by(self) -> int:
        return self.requested - self.available

    @property
    def message(self) -> str:
        return _("%(scope)s的%(resource)s配额不足：申请 %(requested)s，可用 %(available)s，还差 %(short)s。") % {
            "scope": self.scope_name,
            "resource": RESOURCE_LABELS[self.resource],
            "requested": amount_label(self.resource, self.requested),
            "available": amount_label(self.resource, self.available),
            "short": amount_label(self.resource, self.short_by),
        }

    def as_dict(self) -> dict:
        return {**asdict(self), "short_by": self.short_by, "message": self.message}


class QuotaExceeded(Conflict):
    code = TenantsError.QUOTA_EXCEEDED

    def __init__(self, shortfalls: list[Shortfall]):
        self.shortfalls = shortfalls
        super().__init__(
            " ".join(s.message for s in shortfalls),
            detail={"shortfalls": [s.as_dict() for s in shortfalls]},
        )


def as_amounts(amounts: ResourceAmounts | Mapping[str, int]) -> ResourceAmounts:
    """Accept a ResourceAmounts or a plain mapping {"vcpu": 2, ...} (callers from other apps)."""
    if isinstance(amounts, ResourceAmounts):
        return amounts
    unknown = set(amounts) - set(RESOURCES)
    if unknown:
        raise InvalidInput(
            _("未知资源：%(names)s") % {"names": ", ".join(sorted(unknown))}, code=TenantsError.UNKNOWN_RESOURCE
        )
    return ResourceAmounts(**amounts)


def quota_scope_name(quota: Quota) -> str:
    if quota.scope == Quota.Scope.COURSE:
        return _("课程 %(code)s") % {"code": quota.course.code}
    if quota.scope == Quota.Scope.USER:
        return _("用户 %(name)s") % {"name": quota.user.get_full_name()}
    return quota.tenant.name


def _shortfalls(quotas: list[Quota], amounts: ResourceAmounts) -> list[Shortfall]:
    result = []
    for quota in quotas:
        for name in RESOURCES:
            requested = getattr(amounts, name)
            limit = getattr(quota, f"limit_{name}")
            if not requested or limit is None:
                continue
            available = max(0, limit - getattr(quota, f"used_{name}") - getattr(quota, f"reserved_{name}"))
            if requested > available:
                result.append(
                    Shortfall(quota.pk, quota.scope, quota_scope_name(quota), name, requested, available, limit)
                )
    return result


def _binding_quotas(*, tenant: Tenant, course=None, user=None) -> list[Quota]:
    """The same rows quota_rows_lock would lock, read without a lock (for checks and pages)."""
    condition = Q(scope=Quota.Scope.TENANT, tenant__path__in=tenant.ancestor_paths())
    if course is not None:
        condition |= Q(scope=Quota.Scope.COURSE, course=course)
    if user is not None:
        condition |= Q(scope=Quota.Scope.USER, tenant=tenant, user=user)
    return list(Quota.objects.filter(condition).select_related("tenant", "course", "user").order_by("pk"))


def _check_scope(tenant: Tenant, course, user) -> None:
    if course is not None and course.tenant_id != tenant.pk:
        raise InvalidInput(_("课程不属于该租户。"), code=TenantsError.COURSE_NOT_IN_TENANT)


def quota_check(
    *, tenant: Tenant, course: Course | None = None, user: User | None = None, amounts: ResourceAmounts
) -> list[Shortfall]:
    """What would not fit, per quota and resource; empty when everything fits. Takes no lock."""
    _check_scope(tenant, course, user)
    amounts = as_amounts(amounts)
    return _shortfalls(_binding_quotas(tenant=tenant, course=course, user=user), amounts)


def _apply(quota: Quota, amounts: ResourceAmounts, *, reserved: int = 0, used: int = 0) -> None:
    """Add `reserved`/`used` times the amounts (±1) to the quota's counters, never below zero."""
    for name in RESOURCES:
        value = getattr(amounts, name)
        if reserved:
            setattr(quota, f"reserved_{name}", max(0, getattr(quota, f"reserved_{name}") + reserved * value))
        if used:
            setattr(quota, f"used_{name}", max(0, getattr(quota, f"used_{name}") + used * value))


def _save_counters(quota: Quota) -> None:
    _threshold_track(quota)
    counter_fields = [f"{p}{n}" for p in ("used_", "reserved_") for n in RESOURCES]
    quota.save(update_fields=[*counter_fields, "notified_level", "updated_at"])


def quota_reserve(
    *,
    tenant: Tenant,
    course: Course | None = None,
    user: User | None = None,
    amounts: ResourceAmounts,
    reason: str,
    actor: User | None = None,
) -> Reservation:
    """Hold `amounts` against every binding quota, or raise QuotaExceeded (409) listing what is short."""
    (reservation,) = quota_reserve_many(
        tenant=tenant, course=course, shares=[(user, amounts)], reason=reason, actor=actor
    )
    return reservation


def quota_reserve_many(
    *,
    tenant: Tenant,
    course: Course | None = None,
    shares: list[tuple[User | None, ResourceAmounts]],
    reason: str,
    actor: User | None = None,
) -> list[Reservation]:
    """``quota_reserve`` for a batch of shares of the same tenant and course, each with its user (a pool's
    seats): all reserved, or none and QuotaExceeded for the first share that does not fit beside the
    ones before it. The binding quota rows are locked in one statement and written once, the
    reservations inserted together; each still gets its own reservation and audit event."""
    _check_scope(tenant, course, None)
    shares = [(user, as_amounts(amounts)) for user, amounts in shares]
    with transaction.atomic():
        users = list({user.pk: user for user, _amounts in shares if user is not None}.values())
        quotas = quota_rows_lock_for_users(tenant=tenant, course=course, users=users)
        shared = [q for q in quotas if q.scope != Quota.Scope.USER]
        own: dict[int, list[Quota]] = {}
        for quota in quotas:
            if quota.scope == Quota.Scope.USER:
                own.setdefault(quota.user_id, []).append(quota)
        made = []
        for user, amounts in shares:
            binding = shared + (own.get(user.pk, []) if user is not None else [])
            shortfalls = _shortfalls(binding, amounts)
            if shortfalls:
                raise QuotaExceeded(shortfalls)
            for quota in binding:
                _apply(quota, amounts, reserved=+1)
            made.append(Reservation(tenant=tenant, course=course, user=user, reason=reason[:255], **amounts.as_dict()))
        for quota in quotas:
            _save_counters(quota)
        Reservation.objects.bulk_create(made)
        for reservation, (_user, amounts) in zip(made, shares, strict=True):
            event_record(
                action=Action.QUOTA_RESERVED, actor=actor, target=reservation, tenant=tenant, detail=amounts.as_dict()
            )
    return made


def _commit_locked(reservation: Reservation, actor: User | None) -> Reservation:
    if reservation.state == Reservation.State.COMMITTED:
        return reservation
    if reservation.state != Reservation.State.RESERVED:
        raise InvalidTransition(_("该预留已释放，不能再确认使用。"))
    amounts = ResourceAmounts.of(reservation)
    for quota in quota_rows_lock(tenant=reservation.tenant, course=reservation.course, user=reservation.user):
        _apply(quota, amounts, reserved=-1, used=+1)
        _save_counters(quota)
    reservation.state = Reservation.State.COMMITTED
    reservation.save(update_fields=["state", "updated_at"])
    event_record(action=Action.QUOTA_COMMITTED, actor=actor, target=reservation, tenant=reservation.tenant)
    return reservation


def quota_commit(*, reservation: Reservation, actor: User | None = None) -> Reservation:
    """Provisioning succeeded: the reserved amounts become used. Committing twice is harmless."""
    with transaction.atomic():
        return _commit_locked(reservation_lock(reservation.pk), actor)


def quota_commit_ids(*, reservation_ids: list[int], actor: User | None = None) -> list[Reservation]:
    """``quota_commit`` of reservations known by id (as a desktop stores them): read and locked in one
    statement, not read first and locked again. Ids of no reservation are skipped."""
    with transaction.atomic():
        return [_commit_locked(reservation, actor) for reservation in reservations_lock(reservation_ids)]


def quota_release(*, reservation: Reservation, actor: User | None = None) -> Reservation:
    """Give the amounts back: provisioning failed, or the resource was deleted. Releasing twice is harmless."""
    with transaction.atomic():
        reservation = reservation_lock(reservation.pk)
        if reservation.state == Reservation.State.RELEASED:
            return reservation
        amounts = ResourceAmounts.of(reservation)
        committed = reservation.state == Reservation.State.COMMITTED
        for quota in quota_rows_lock(tenant=reservation.tenant, course=reservation.course, user=reservation.user):
            _apply(quota, amounts, used=-1 if committed else 0, reserved=0 if committed else -1)
            _save_counters(quota)
        reservation.state = Reservation.State.RELEASED
        reservation.save(update_fields=["state", "updated_at"])
        event_record(action=Action.QUOTA_RELEASED, actor=actor, target=reservation, tenant=reservation.tenant)
    return reservation


def quota_charge_existing(
    *, tenant: Tenant, shares: list[ResourceAmounts], reason: str, actor: User | None = None
) -> list[Reservation | None]:
    """Charge resources that already exist (a takeover of running VMs): reserved and committed at once.

    Each share in turn is charged when it still fits beside the ones before it, and gets a
    committed reservation; one that does not fit gets None and changes nothing. The tenant's
    quota rows are locked once and written once, and one audit event records the batch, so a
    takeover of 1,000 VMs costs a handful of queries rather than a few thousand.
    """
    shares = [as_amounts(share) for share in shares]
    with transaction.atomic():
        quotas = quota_rows_lock(tenant=tenant, course=None, user=None)
        charged: list[Reservation | None] = []
        total = ResourceAmounts()
        for share in shares:
            if _shortfalls(quotas, share):
                charged.append(None)
                continue
            for quota in quotas:
                _apply(quota, share, used=+1)
            total = total + share
            charged.append(
                Reservation(tenant=tenant, state=Reservation.State.COMMITTED, reason=reason[:255], **share.as_dict())
            )
        made = [reservation for reservation in charged if reservation is not None]
        if not made:
            return charged
        Reservation.objects.bulk_create(made, batch_size=500)
        for quota in quotas:
            _save_counters(quota)
        event_record(
            action=Action.QUOTA_COMMITTED,
            actor=actor,
            tenant=tenant,
            object_type="tenants.reservation",
            object_id=f"{made[0].pk}-{made[-1].pk}" if made[0].pk else "",
            object_name=reason[:255],
            detail={"charged": len(made), "not_charged": len(charged) - len(made), **total.as_dict()},
        )
    return charged


# --- Limits -----------------------------------------------------------------------------------


def quota_key(*, tenant: Tenant, course: Course | None = None, user: User | None = None) -> tuple[str, str]:
    if course is not None:
        return Quota.Scope.COURSE, f"course:{course.pk}"
    if user is not None:
        return Quota.Scope.USER, f"user:{tenant.pk}:{user.pk}"
    return Quota.Scope.TENANT, f"tenant:{tenant.pk}"


def _parent_limits(*, tenant: Tenant, scope: str) -> dict[str, tuple[int, str]]:
    """The tightest limit above a quota, per resource, with the name of the quota that sets it."""
    paths = tenant.ancestor_paths()
    if scope == Quota.Scope.TENANT:
        paths = paths[:-1]
    bounds: dict[str, tuple[int, str]] = {}
    for quota in Quota.objects.filter(scope=Quota.Scope.TENANT, tenant__path__in=paths).select_related("tenant"):
        for name, limit in quota.limits().items():
            if limit is not None and (name not in bounds or limit < bounds[name][0]):
                bounds[name] = (limit, quota.tenant.name)
    return bounds


def _child_quotas(quota: Quota):
    """Quotas bounded by this one: descendant tenants' quotas, and the courses and users of the tenant."""
    if quota.scope != Quota.Scope.TENANT:
        return Quota.objects.none()
    return (
        Quota.objects.filter(Q(tenant__path__startswith=quota.tenant.path))
        .exclude(pk=quota.pk)
        .filter(Q(tenant=quota.tenant) | Q(scope=Quota.Scope.TENANT))
        .select_related("tenant", "course", "user")
    )


def _usage_in_scope(scope: str, *, tenant: Tenant, course=None, user=None) -> dict[str, int]:
    """Current used_/reserved_ counters of a new quota, summed from the live reservations of its scope."""
    live = Reservation.objects.exclude(state=Reservation.State.RELEASED)
    if scope == Quota.Scope.COURSE:
        live = live.filter(course=course)
    elif scope == Quota.Scope.USER:
        live = live.filter(tenant=tenant, user=user)
    else:
        live = live.filter(tenant__path__startswith=tenant.path)
    counters = {}
    for state, prefix in ((Reservation.State.RESERVED, "reserved_"), (Reservation.State.COMMITTED, "used_")):
        sums = live.filter(state=state).aggregate(**{name: Sum(name) for name in RESOURCES})
        counters.update({f"{prefix}{name}": sums[name] or 0 for name in RESOURCES})
    return counters


def _check_limits(limits: dict[str, int | None]) -> None:
    """Known resources, each limit a non-negative integer or None."""
    unknown = set(limits) - set(RESOURCES)
    if unknown:
        raise InvalidInput(
            _("未知资源：%(names)s") % {"names": ", ".join(sorted(unknown))}, code=TenantsError.UNKNOWN_RESOURCE
        )
    for name, value in limits.items():
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidInput(_("配额必须是非负整数。"), code=TenantsError.INVALID_AMOUNT, detail={name: value})


def _quota_for_update(*, key: str, scope: str, tenant: Tenant, course=None, user=None) -> Quota:
    """The scope's quota row locked, or a new one (not saved) whose counters are the scope's live usage."""
    existing = Quota.objects.filter(key=key).values_list("pk", flat=True).first()
    if existing:
        return quota_row_lock(existing)
    quota = Quota(key=key, scope=scope, tenant=tenant, course=course, user=user)
    for field, value in _usage_in_scope(scope, tenant=tenant, course=course, user=user).items():
        setattr(quota, field, value)
    return quota


def _refuse_over_parent(quota: Quota, *, tenant: Tenant, scope: str) -> None:
    """A limit above the tightest one above it is refused, naming that quota."""
    above = _parent_limits(tenant=tenant, scope=scope)
    over_parent = {
        name: {"limit": value, "parent_limit": above[name][0], "parent": above[name][1]}
        for name, value in quota.limits().items()
        if value is not None and name in above and value > above[name][0]
    }
    if over_parent:
        raise InvalidInput(
            _("下级配额不能超过上级：%(items)s")
            % {
                "items": "；".join(
                    _("%(resource)s 上限 %(parent_limit)s（%(parent)s）")
                    % {**v, "resource": RESOURCE_LABELS[n], "parent_limit": amount_label(n, v["parent_limit"])}
                    for n, v in over_parent.items()
                )
            },
            code=TenantsError.QUOTA_EXCEEDS_PARENT,
            detail=over_parent,
        )


def _refuse_below_children(quota: Quota) -> None:
    """A limit below what a quota under it already allows is refused, naming those quotas."""
    below_children = {}
    for child in _child_quotas(quota):
        for name, value in quota.limits().items():
            child_limit = getattr(child, f"limit_{name}")
            if value is not None and child_limit is not None and child_limit > value:
                below_children.setdefault(name, []).append(str(child))
    if below_children:
        raise Conflict(
            _("下级配额高于新的上限，请先调低下级配额：%(items)s")
            % {"items": "；".join(f"{RESOURCE_LABELS[n]}: {', '.join(c)}" for n, c in below_children.items())},
            code=TenantsError.QUOTA_BELOW_CHILDREN,
            detail=below_children,
        )


def quota_set(
    *,
    actor: User | None,
    tenant: Tenant,
    course: Course | None = None,
    user: User | None = None,
    limits: dict[str, int | None],
) -> Quota:
    """Set the limits of a scope (None: no limit at this level). A child never exceeds its parent."""
    _check_scope(tenant, course, user)
    scope, key = quota_key(tenant=tenant, course=course, user=user)
    if actor is not None and not permissions.can_set_quota(actor, tenant=tenant, scope=scope):
        raise Forbidden(_("您不能修改这个配额。"), code=TenantsError.QUOTA_FORBIDDEN)
    _check_limits(limits)

    with transaction.atomic():
        quota = _quota_for_update(key=key, scope=scope, tenant=tenant, course=course, user=user)
        before = quota.limits() if quota.pk else {}
        for name, value in limits.items():
            setattr(quota, f"limit_{name}", value)
        _refuse_over_parent(quota, tenant=tenant, scope=scope)
        if quota.pk:
            _refuse_below_children(quota)
        _threshold_track(quota)
        quota.save()
        event_record(
            action=Action.QUOTA_CHANGED,
            actor=actor,
            target=quota,
            tenant=tenant,
            detail={"before": before, "after": quota.limits()},
        )
    return quota


def quota_add(*, actor: User | None, quota: Quota, amounts: ResourceAmounts) -> Quota:
    """Raise a quota's limits by `amounts` (an approved quota increase)."""
    limits = {
        name: (quota.limits()[name] or 0) + getattr(amounts, name)
        for name in RESOURCES
        if getattr(amounts, name) and quota.limits()[name] is not None
    }
    return quota_set(actor=actor, tenant=quota.tenant, course=quota.course, user=quota.user, limits=limits)


def quota_rows(quotas) -> list[dict]:
    """Per quota and resource: used, reserved, limit and bar widths, for the quota bars."""
    rows = []
    for quota in quotas:
        bars = []
        for name in RESOURCES:
            limit = getattr(quota, f"limit_{name}")
            used, reserved = getattr(quota, f"used_{name}"), getattr(quota, f"reserved_{name}")
            if limit is None and not used and not reserved:
                continue
            scale = limit or max(used + reserved, 1)
            bars.append(
                {
                    "name": name,
                    "label": RESOURCE_LABELS[name],
                    "used": used,
                    "reserved": reserved,
                    "limit": limit,
                    "free": None if limit is None else max(0, limit - used - reserved),
                    # As pages write them (memory as 256 MiB / 1.5 GiB, like the flavor and the wizard).
                    "used_text": amount_label(name, used),
                    "reserved_text": amount_label(name, reserved),
                    "limit_text": amount_label(name, limit),
                    "free_text": None if limit is None else amount_label(name, max(0, limit - used - reserved)),
                    "used_pct": min(100, used * 100 // scale),
                    "reserved_pct": min(100 - min(100, used * 100 // scale), reserved * 100 // scale),
                    "percent": (used + reserved) * 100 // scale if limit else None,
                }
            )
        rows.append({"quota": quota, "name": quota_scope_name(quota), "bars": bars, "level": quota_level(quota)})
    return rows


# --- 80 % / 100 % notifications ---------------------------------------------------------------


def quota_level(quota: Quota) -> int:
    """The highest threshold (0, 80, 100) that used + reserved reaches on any limited resource."""
    level = 0
    for name, limit in quota.limits().items():
        if limit is None:
            continue
        taken = getattr(quota, f"used_{name}") + getattr(quota, f"reserved_{name}")
        percent = 100 if limit == 0 and taken else (taken * 100 // limit if limit else 0)
        level = max([level, *(t for t in THRESHOLDS if percent >= t)])
    return level


def _threshold_track(quota: Quota) -> None:
    """Notify the tenant's admins once per upward crossing; falling back re-arms the threshold."""
    level = quota_level(quota)
    if level > quota.notified_level:
        transaction.on_commit(lambda: _threshold_notify(quota.pk, level))
    quota.notified_level = level


def _threshold_notify(quota_pk: int, level: int) -> None:
    quota = Quota.objects.select_related("tenant", "course", "user").filter(pk=quota_pk).first()
    if quota is None:
        return
    recipients = list(
        Membership.objects.filter(tenant=quota.tenant, role=TenantRole.TENANT_ADMIN)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return
    usage = [
        f"{RESOURCE_LABELS[n]}: {amount_label(n, getattr(quota, f'used_{n}'))}"
        f" + {amount_label(n, getattr(quota, f'reserved_{n}'))} / {amount_label(n, limit)}"
        for n, limit in quota.limits().items()
        if limit is not None
    ]
    send_mail(
        subject=_("配额提醒：%(scope)s 已用到 %(level)s%%") % {"scope": quota_scope_name(quota), "level": level},
        message=_("%(scope)s 的配额使用（已用 + 预留 / 上限）已达到 %(level)s%%：\n%(usage)s")
        % {"scope": quota_scope_name(quota), "level": level, "usage": "\n".join(usage)},
        from_email=None,
        recipient_list=recipients,
        fail_silently=True,
    )


def quota_recount(*, actor: User | None = None) -> dict:
    """Recompute every quota's used/reserved counters from the live reservations; fix and audit drift.

    The counters are changed only under row locks, so drift means a bug or a manual database
    edit; the nightly run (portal/celery.py) makes such drift visible in the audit log.
    """
    fixed = []
    for pk in Quota.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            quota = quota_row_lock(pk)
            counters = _usage_in_scope(quota.scope, tenant=quota.tenant, course=quota.course, user=quota.user)
            drift = {
                field: [getattr(quota, field), value]
                for field, value in counters.items()
                if getattr(quota, field) != value
            }
            if not drift:
                continue
            for field, (_old, value) in drift.items():
                setattr(quota, field, value)
            _save_counters(quota)
            event_record(
                action=Action.QUOTA_CHANGED,
                actor=actor,
                target=quota,
                tenant=quota.tenant,
                reason="recount",
                detail={"drift": drift},
            )
            fixed.append(quota.key)
    return {"checked": Quota.objects.count(), "fixed": fixed}

"""The security policy in force: the security admin's thresholds, never weaker than the platform floor.

The floor is the 等保 level-3 baseline (settings.SECURITY_POLICY_FLOOR may tighten it, never
loosen it below what the code accepts). django-axes reads its limits from here through the
callables below, so a policy change applies without a restart.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit import hooks
from audit.actions import Action
from audit.errors import AuditError
from audit.models import SecurityPolicy
from common.errors import Forbidden, InvalidInput

CACHE_KEY = "audit:security-policy:v1"
CACHE_SECONDS = 30


@dataclass(frozen=True)
class Bound:
    """A policy field: at least `minimum` and at most `maximum` (None: unbounded)."""

    minimum: int
    maximum: int | None
    label: str


# The platform floor: "stricter" is up for lengths and durations of locks, down for ages and limits.
FLOOR = {
    "password_min_length": Bound(8, 64, gettext_lazy("密码最小长度")),
    "password_min_classes": Bound(3, 4, gettext_lazy("字符类别数")),
    "password_history": Bound(5, 24, gettext_lazy("历史密码数")),
    "password_max_age_days": Bound(1, 90, gettext_lazy("密码有效期（天）")),
    "lockout_failures": Bound(1, 5, gettext_lazy("登录失败锁定次数")),
    "lockout_minutes": Bound(30, 24 * 60, gettext_lazy("锁定时长（分钟）")),
    "idle_timeout_minutes": Bound(1, 15, gettext_lazy("空闲超时（分钟）")),
    "reauth_minutes": Bound(1, 15, gettext_lazy("重新验证有效期（分钟）")),
    "audit_retention_days": Bound(180, 3650, gettext_lazy("审计日志保留（天）")),
}
EDITABLE = tuple(FLOOR)


def floor() -> dict[str, Bound]:
    overrides = getattr(settings, "SECURITY_POLICY_FLOOR", {}) or {}
    result = dict(FLOOR)
    for name, (minimum, maximum) in overrides.items():
        if name in result:
            base = result[name]
            result[name] = Bound(max(minimum, base.minimum), min(maximum, base.maximum or maximum), base.label)
    return result


def current_policy() -> SecurityPolicy:
    """The policy in force (cached briefly: every request's middleware reads it)."""
    policy = cache.get(CACHE_KEY)
    if policy is None:
        policy = SecurityPolicy.objects.filter(pk=1).first() or SecurityPolicy(pk=1)
        cache.set(CACHE_KEY, policy, CACHE_SECONDS)
    return policy


def policy_update(*, actor, **changes) -> SecurityPolicy:
    """The security admin changes thresholds; each must stay within the floor. Audited with before/after."""
    from audit.services import event_record

    if "security_admin" not in hooks.roles_of(actor):
        raise Forbidden(_("只有安全管理员可以修改安全策略。"), code=AuditError.SECURITY_ADMIN_ONLY)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(
            _("未知的策略项：%(names)s") % {"names": ", ".join(sorted(unknown))}, code=AuditError.UNKNOWN_POLICY_FIELD
        )
    bounds = floor()
    errors = {}
    for name, value in changes.items():
        bound = bounds[name]
        if not isinstance(value, int) or value < bound.minimum or (bound.maximum is not None and value > bound.maximum):
            errors[name] = _("%(label)s 必须在 %(min)s 到 %(max)s 之间（平台底线）。") % {
                "label": bound.label,
                "min": bound.minimum,
                "max": bound.maximum,
            }
    if errors:
        raise InvalidInput(_("安全策略低于平台底线。"), code=AuditError.BELOW_PLATFORM_FLOOR, detail=errors)
    with transaction.atomic():
        policy, _created = SecurityPolicy.objects.select_for_update().get_or_create(pk=1)
        before = {name: getattr(policy, name) for name in EDITABLE}
        for name, value in changes.items():
            setattr(policy, name, value)
        policy.updated_by = actor.username
        policy.save()
        after = {name: getattr(policy, name) for name in EDITABLE}
        changed = {name: [before[name], after[name]] for name in EDITABLE if before[name] != after[name]}
        event_record(action=Action.POLICY_CHANGED, actor=actor, target=policy, detail={"changed": changed})
        transaction.on_commit(lambda: cache.delete(CACHE_KEY))
    cache.delete(CACHE_KEY)
    return policy


# --- django-axes reads these (settings.AXES_FAILURE_LIMIT / AXES_COOLOFF_TIME) ----------------


def axes_failure_limit(request=None, credentials=None) -> int:
    return current_policy().lockout_failures


def axes_cooloff(request=None) -> timedelta:
    return timedelta(minutes=current_policy().lockout_minutes)

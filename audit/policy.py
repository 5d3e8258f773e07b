"""The security policy in force: the security admin's thresholds, never weaker than the platform floor.

The floor is the 等保 level-3 baseline (settings.SECURITY_POLICY_FLOOR may tighten it, never
loosen it below what the code accepts). django-axes reads its limits from here through the
callables below, so a policy change applies without a restart. The security admin changes it
through audit.services.policy_update; this module only reads.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext_lazy

from audit.models import SecurityPolicy

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


# --- django-axes reads these (settings.AXES_FAILURE_LIMIT / AXES_COOLOFF_TIME) ----------------


def axes_failure_limit(request=None, credentials=None) -> int:
    return current_policy().lockout_failures


def axes_cooloff(request=None) -> timedelta:
    return timedelta(minutes=current_policy().lockout_minutes)

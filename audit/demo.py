"""Demo data of the audit app: TOTP for the accounts that need it, and a past month of audit history.

When $DEMO_TOTP_SECRET (base32) is set, every account that needs a second factor gets a
confirmed TOTP device with that secret, so a demo authenticator works for all of them;
otherwise they are asked to enrol at first login. The history is appended to the chain in
one batch, marked with request ids starting "demo-", and written once.
"""

import base64
import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from audit import chain, hooks
from audit.actions import Action
from audit.models import AuditEvent
from audit.security import SECOND_FACTOR_ROLES, totp_install

DAYS = 30
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _totp_secret_hex() -> str | None:
    secret = (settings.DEMO_TOTP_SECRET or "").strip().replace(" ", "").upper()
    if not secret:
        return None
    try:
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    except ValueError as exc:
        raise ImproperlyConfigured("DEMO_TOTP_SECRET must be base32 (A-Z, 2-7).") from exc
    if len(raw) < 20:
        raise ImproperlyConfigured("DEMO_TOTP_SECRET must carry at least 160 bits (32 base32 characters).")
    return raw.hex()


def seed() -> dict:
    secret_hex = _totp_secret_hex()
    totp = 0
    if secret_hex:
        for user in hooks.privileged_users():
            if hooks.roles_of(user) & SECOND_FACTOR_ROLES:
                totp_install(user=user, secret_hex=secret_hex)
                totp += 1
    history = 0
    if not AuditEvent.objects.filter(request_id__startswith="demo-").exists():
        history = chain.append_many(list(_history()))
    return {"totp_accounts": totp, "history_events": history, "events": AuditEvent.objects.count()}


def _history():
    """A month of a college's life: logins, desktops, consoles, requests, a few failures."""
    users = {u.username: u for u in get_user_model().objects.filter(username__in=_NAMES)}
    rng = random.Random(2026)  # the same history on every machine
    now = timezone.now()
    start = (now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    counter = 0
    for day in range(DAYS):
        base = start + timedelta(days=day)
        if base.weekday() >= 5:
            continue
        plan = [("teacher1", Action.LOGIN_SUCCEEDED, None), ("teacher1", Action.CONSOLE_OPENED, "desktop")]
        for n in rng.sample(range(1, 31), 8):
            plan += [
                (f"student{n}", Action.LOGIN_SUCCEEDED, None),
                (f"student{n}", Action.DESKTOP_STARTED, "desktop"),
                (f"student{n}", Action.CONSOLE_OPENED, "desktop"),
                (f"student{n}", Action.DESKTOP_STOPPED, "desktop"),
            ]
        if day % 7 == 1:
            plan += [
                ("teacher1", Action.REQUEST_SUBMITTED, "request"),
                ("cs_admin", Action.LOGIN_SUCCEEDED, None),
                ("cs_admin", Action.REQUEST_APPROVED, "request"),
            ]
        if day % 5 == 2:
            plan += [("auditor1", Action.LOGIN_SUCCEEDED, None), ("auditor1", Action.AUDIT_SEARCHED, None)]
        if day % 9 == 3:
            plan += [("finance1", Action.LOGIN_SUCCEEDED, None), ("finance1", Action.PRICE_PLAN_CHANGED, "price_plan")]
        if day % 4 == 0:
            plan += [("teacher2", Action.LOGIN_SUCCEEDED, None), ("me_admin", Action.QUOTA_CHANGED, "quota")]
        if day % 6 == 0:
            plan += [(f"student{rng.randint(1, 30)}", Action.LOGIN_FAILED, None)]
        minute = 0  # 00:00 UTC is 08:00 in Shanghai: the day starts with the first class
        for username, action, kind in plan:
            minute += rng.randint(1, 12)
            counter += 1
            yield _event(users.get(username), username, action, kind, base + timedelta(minutes=minute), counter, rng)


_NAMES = [
    "teacher1",
    "teacher2",
    "cs_admin",
    "me_admin",
    "auditor1",
    "finance1",
    *[f"student{n}" for n in range(1, 32)],
]


def _event(user, username, action, kind, when, counter, rng) -> AuditEvent:
    role, tenant = hooks.describe_actor(user) if user is not None else ("", "")
    failed = action == Action.LOGIN_FAILED
    object_type, object_id, object_name = {
        "desktop": ("compute.desktop", str(100 + counter % 60), f"CS101-{username}"),
        "request": ("tenants.approvalrequest", str(counter), "CS101 实验桌面申请"),
        "price_plan": ("billing.priceplan", "1", "计算机学院标准价格"),
        "quota": ("tenants.quota", "2", "机械学院配额"),
        None: ("tenants.user", str(getattr(user, "pk", "")), username),
    }[kind]
    return AuditEvent(
        occurred_at=when,
        actor_id=None if failed else getattr(user, "pk", None),
        actor_username=username,
        actor_role="" if failed else role,
        tenant_slug=tenant,
        source_ip=f"10.{20 if username.startswith('student') else 10}.{rng.randint(1, 30)}.{rng.randint(2, 250)}",
        user_agent=BROWSER,
        request_id=f"demo-{counter:06d}",
        action=str(action),
        object_type=object_type,
        object_id=object_id,
        object_name=object_name,
        result=AuditEvent.Result.FAILURE if failed else AuditEvent.Result.SUCCESS,
        reason="invalid credentials" if failed else "",
        detail={} if kind != "desktop" else {"course": "CS101"},
    )

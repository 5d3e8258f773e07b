"""Budgets: a tenant's or course's monthly limit, the alerts at 80% and 100%, and the block on new desktops."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from billing.errors import BillingError
from billing.models import Budget, BudgetAlert
from common import limits
from common.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from tenants.models import Course, Tenant, User


log = logging.getLogger(__name__)
THRESHOLDS = (80, 100)


def budget_set(
    *,
    actor: User | None,
    tenant: Tenant,
    amount: Decimal | str,
    course: Course | None = None,
    block_new_desktops: bool = False,
) -> Budget:
    if course is not None and course.tenant_id != tenant.pk:
        raise InvalidInput(_("课程不属于该租户。"), code=BillingError.COURSE_TENANT_MISMATCH)
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        value = None
    if value is None or not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        message = _("预算必须是最多 2 位小数的正数。")
        raise InvalidInput(message, code=BillingError.BUDGET_AMOUNT_INVALID, detail={"amount": [message]})
    limits.check_size(value, field="amount", minimum=Decimal("0.01"), maximum=limits.MONEY_MAX)
    with transaction.atomic():
        budget, _created = Budget.objects.update_or_create(
            tenant=tenant, course=course, defaults={"amount": value, "block_new_desktops": bool(block_new_desktops)}
        )
        event_record(
            action=Action.BUDGET_CHANGED,
            actor=actor,
            target=budget,
            tenant=tenant,
            detail={"amount": str(value), "course": course.pk if course else None, "block": bool(block_new_desktops)},
        )
    return budget


def budgets_check(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Notify (once per budget, month and threshold) when a month's spend reaches 80% and 100%."""
    from billing.selectors import budget_spent

    now = now or timezone.now()
    month = timezone.localtime(now).date().replace(day=1)
    alerts = []
    for budget in Budget.objects.select_related("tenant", "course"):
        spent = budget_spent(budget, now=now)
        for threshold in THRESHOLDS:
            if spent * 100 < budget.amount * threshold:
                continue
            with transaction.atomic():
                alert, created = BudgetAlert.objects.get_or_create(
                    budget=budget, month=month, threshold=threshold, defaults={"spent": spent}
                )
                if not created:
                    continue
                event_record(
                    action=Action.BUDGET_THRESHOLD_REACHED,
                    target=budget,
                    tenant=budget.tenant,
                    detail={"threshold": threshold, "spent": str(spent), "amount": str(budget.amount)},
                )
                transaction.on_commit(lambda b=budget, t=threshold, s=spent: _notify(b, t, s))
            alerts.append(alert)
    return alerts


def _notify(budget: Budget, threshold: int, spent: Decimal) -> None:
    from tenants.models import Membership

    recipients = list(
        Membership.objects.filter(tenant=budget.tenant, role="finance")
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if budget.course_id and budget.course.teacher.email:
        recipients.append(budget.course.teacher.email)
    if not recipients:
        return
    scope = f"{budget.course.code} {budget.course.name}" if budget.course_id else budget.tenant.name
    subject = _("预算提醒：%(scope)s 本月费用已达 %(threshold)s%%") % {"scope": scope, "threshold": threshold}
    body = _("%(scope)s 本月已产生费用 %(spent)s 元，预算 %(amount)s 元。") % {
        "scope": scope,
        "spent": spent,
        "amount": budget.amount,
    }
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except OSError:
        log.warning("budget notice for budget %s not sent", budget.pk, exc_info=True)


def budget_enforce(*, tenant: Tenant, course: Course | None = None) -> None:
    """Refuse a new desktop when a blocking budget of its tenant (or course) is spent (compute hook)."""
    from billing.selectors import budget_blocks

    blocking = budget_blocks(tenant, course)
    if blocking is not None:
        raise Conflict(
            _("本月预算（%(amount)s 元）已用完，暂不能新建桌面。请联系财务调整预算。") % {"amount": blocking.amount},
            code=BillingError.BUDGET_EXHAUSTED,
            detail={"budget": blocking.pk},
        )

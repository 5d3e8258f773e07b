"""Writes of billing: metering, price plans, allowances, invoices, credit notes and budgets.

The services live in ``usage`` (metering, called by compute's and network's hooks), ``prices``,
``invoices`` and ``budgets``; the public ones are re-exported here, so callers import
``billing.services`` alone.
"""

from billing.services.budgets import budget_enforce, budget_set, budgets_check
from billing.services.invoices import IssueResult, credit_note_issue, invoice_issue, invoices_issue, month_parse
from billing.services.prices import allowance_set, effective_parse, price_plan_create, rate_parse
from billing.services.usage import (
    cursor_allocation,
    desktop_changed,
    desktop_usage_record,
    desktops_changed,
    elastic_ip_changed,
    elastic_ip_usage_record,
    usage_close_until,
    volume_changed,
    volume_usage_record,
)

__all__ = [
    "IssueResult",
    "allowance_set",
    "budget_enforce",
    "budget_set",
    "budgets_check",
    "credit_note_issue",
    "cursor_allocation",
    "desktop_changed",
    "desktop_usage_record",
    "desktops_changed",
    "effective_parse",
    "elastic_ip_changed",
    "elastic_ip_usage_record",
    "invoice_issue",
    "invoices_issue",
    "month_parse",
    "price_plan_create",
    "rate_parse",
    "usage_close_until",
    "volume_changed",
    "volume_usage_record",
]

"""The error codes of the billing app: what API clients read in {"code", ...}, so values never change."""

from enum import StrEnum


class BillingError(StrEnum):
    # Price plans and free allowances
    RATE_INVALID = "rate_invalid"
    RATE_NEGATIVE = "rate_negative"
    RATE_TOO_PRECISE = "rate_too_precise"
    RATE_TOO_LARGE = "rate_too_large"
    DISCOUNT_INVALID = "discount_invalid"
    EFFECTIVE_NOT_WHOLE_HOUR = "effective_not_whole_hour"
    PRICE_PLAN_DATE_MISSING = "price_plan_date_missing"
    PRICE_PLAN_DATE_TAKEN = "price_plan_date_taken"
    PRICE_PLAN_NAME_MISSING = "price_plan_name_missing"
    PRICE_PLAN_EMPTY = "price_plan_empty"
    ITEM_UNKNOWN = "item_unknown"
    ALLOWANCE_INVALID = "allowance_invalid"

    # Invoices and credit notes
    MONTH_INVALID = "month_invalid"
    MONTH_NOT_OVER = "month_not_over"
    INVOICE_IMMUTABLE = "invoice_immutable"
    CREDIT_REASON_MISSING = "credit_reason_missing"
    CREDIT_AMOUNT_INVALID = "credit_amount_invalid"
    CREDIT_EXCEEDS_BALANCE = "credit_exceeds_balance"

    # Budgets
    BUDGET_AMOUNT_INVALID = "budget_amount_invalid"
    BUDGET_EXHAUSTED = "budget_exhausted"
    COURSE_TENANT_MISMATCH = "course_tenant_mismatch"

    # Usage reports
    DATE_INVALID = "date_invalid"
    DATE_RANGE_REVERSED = "date_range_reversed"
    DATE_RANGE_TOO_LONG = "date_range_too_long"
    GROUP_BY_INVALID = "group_by_invalid"
    COURSE_INVALID = "course_invalid"

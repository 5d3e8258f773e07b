"""Admin: read-only views of billing data (writes go through the services)."""

from django.contrib import admin

from billing.models import Budget, Invoice, PricePlan
from common.admin import ReadOnlyAdmin


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("number", "tenant", "month", "total", "issued_at")


@admin.register(PricePlan)
class PricePlanAdmin(ReadOnlyAdmin):
    list_display = ("name", "tenant", "effective_from", "discount_percent")


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "course", "amount", "block_new_desktops")

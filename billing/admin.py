"""Admin: read-only views of billing data (writes go through the services)."""

from django.contrib import admin

from billing.models import Budget, Invoice, PricePlan


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnly):
    list_display = ("number", "tenant", "month", "total", "issued_at")


@admin.register(PricePlan)
class PricePlanAdmin(ReadOnly):
    list_display = ("name", "tenant", "effective_from", "discount_percent")


@admin.register(Budget)
class BudgetAdmin(ReadOnly):
    list_display = ("tenant", "course", "amount", "block_new_desktops")

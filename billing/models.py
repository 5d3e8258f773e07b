"""Billing data: usage intervals, price plans, free allowances, invoices, credit notes, budgets.

Money is ``Decimal`` yuan (CNY) with 2 places in the database; rates have 4 places.
Invoices, their lines and credit notes are immutable once written: ``save()`` refuses to
change them, and database triggers (migration 0002) refuse UPDATE on MySQL/MariaDB and
SQLite. Corrections are credit notes that reference the invoice.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.errors import BillingError
from common.errors import Conflict


class Item(models.TextChoices):
    """What is metered. Each is an amount held for a time, priced per unit-hour."""

    VCPU = "vcpu", _("vCPU")
    RAM = "ram", _("内存")
    DISK = "disk", _("磁盘")
    GPU = "gpu", _("GPU")
    IP = "ip", _("IP 地址")


UNITS = {
    Item.VCPU: _("vCPU·小时"),
    Item.RAM: _("GiB·小时"),
    Item.DISK: _("GiB·小时"),
    Item.GPU: _("GPU·小时"),
    Item.IP: _("IP·小时"),
}

MONEY = {"max_digits": 14, "decimal_places": 2}
RATE = {"max_digits": 12, "decimal_places": 4}
QUANTITY = {"max_digits": 18, "decimal_places": 4}


class HeldAllocation(models.Model):
    """What a meter holds since when, and for whom: the open usage interval of one holder."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    course = models.ForeignKey("tenants.Course", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    since = models.DateTimeField()
    running = models.BooleanField(default=False)
    vcpus = models.PositiveIntegerField(default=0)
    ram_mib = models.PositiveIntegerField(default=0)
    disk_gib = models.PositiveIntegerField(default=0)
    gpus = models.PositiveIntegerField(default=0)
    ips = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class MeterCursor(HeldAllocation):
    """The open usage interval of one desktop: what it holds since when.

    A state change closes it (writing UsageInterval rows) and opens the next one; the
    same allocation reported again changes nothing, which makes metering idempotent.
    """

    desktop = models.OneToOneField(
        "compute.Desktop", primary_key=True, on_delete=models.CASCADE, related_name="meter_cursor"
    )

    class Meta:
        indexes = [models.Index(fields=["since"])]

    def __str__(self):
        return f"desktop {self.desktop_id} since {self.since:%Y-%m-%d %H:%M}"

    @property
    def holder(self) -> dict:
        return {"desktop_id": self.desktop_id}


class VolumeMeterCursor(HeldAllocation):
    """The open usage interval of a data disk no desktop holds (detached): its GiB, since when.

    An attached disk is metered as part of its desktop (``MeterCursor``); a volume has a
    cursor of its own only while no desktop counts it, so a disk is never counted twice.
    """

    volume = models.OneToOneField(
        "compute.Volume", primary_key=True, on_delete=models.CASCADE, related_name="meter_cursor"
    )

    class Meta:
        indexes = [models.Index(fields=["since"])]

    def __str__(self):
        return f"volume {self.volume_id} since {self.since:%Y-%m-%d %H:%M}"

    @property
    def holder(self) -> dict:
        return {"volume_id": self.volume_id}


class ElasticIPMeterCursor(HeldAllocation):
    """The open usage interval of an elastic IP: one address, from its allocation to its release.

    An elastic IP is metered on its own whether it is bound or not; desktops never count it
    (``billing.metering.ips_of``), so it is counted once, bound or unbound.
    """

    elastic_ip = models.OneToOneField(
        "network.ElasticIP", primary_key=True, on_delete=models.CASCADE, related_name="meter_cursor"
    )

    class Meta:
        indexes = [models.Index(fields=["since"])]

    def __str__(self):
        return f"elastic IP {self.elastic_ip_id} since {self.since:%Y-%m-%d %H:%M}"

    @property
    def holder(self) -> dict:
        return {"elastic_ip_id": self.elastic_ip_id}


# Every kind of open usage interval: what a sweep closes and a report counts up to now.
CURSOR_MODELS = (MeterCursor, VolumeMeterCursor, ElasticIPMeterCursor)


class UsageInterval(models.Model):
    """A closed piece of usage: one holder's allocation over [start, end), within one local day.

    The holder is a desktop, a detached data disk or an elastic IP (at most one of the three).

    Pieces never cross a local midnight (Asia/Shanghai), hence never a month boundary.
    Rates change on whole hours (``PricePlan.effective_from``); pricing cuts the pieces of a
    day with such a change at that instant (``billing.pricing.usage_rows``), so each part is
    priced at its own rate. ``duration_us`` is the exact length in microseconds: the
    quantities are integers (unit-microseconds) until the invoice line divides them.
    """

    # No database constraint: the sweep that closes every open interval inserts pieces while
    # compute holds desktop rows locked; an FK check would take a shared lock on each desktop
    # row and could deadlock with a state change waiting for that desktop's cursor.
    desktop = models.ForeignKey(
        "compute.Desktop",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="usage_intervals",
    )
    # A data disk while no desktop holds it (detached); its pieces have no desktop. No database
    # constraint, for the same reason as ``desktop``.
    volume = models.ForeignKey(
        "compute.Volume",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="usage_intervals",
    )
    # An elastic IP, bound or not; its pieces have neither desktop nor volume. No database
    # constraint, for the same reason as ``desktop``.
    elastic_ip = models.ForeignKey(
        "network.ElasticIP",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="usage_intervals",
    )
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    course = models.ForeignKey("tenants.Course", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    day = models.DateField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    duration_us = models.BigIntegerField()
    running = models.BooleanField(default=False)
    vcpus = models.PositiveIntegerField(default=0)
    ram_mib = models.PositiveIntegerField(default=0)
    disk_gib = models.PositiveIntegerField(default=0)
    gpus = models.PositiveIntegerField(default=0)
    ips = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "day"]),
            models.Index(fields=["course", "day"]),
            models.Index(fields=["day"]),
            models.Index(fields=["desktop", "start"]),
            models.Index(fields=["volume", "start"]),
            models.Index(fields=["elastic_ip", "start"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="usage_positive"),
            # A piece has at most one holder (a desktop, a detached volume, an elastic IP): a disk
            # or an address is counted once.
            models.CheckConstraint(
                condition=(
                    models.Q(desktop__isnull=True, volume__isnull=True)
                    | models.Q(desktop__isnull=True, elastic_ip__isnull=True)
                    | models.Q(volume__isnull=True, elastic_ip__isnull=True)
                ),
                name="usage_one_holder",
            ),
        ]

    def __str__(self):
        return f"{self.desktop_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


class PricePlan(models.Model):
    """Hourly rates of a tenant from a whole hour on. Children inherit their nearest ancestor's rate per item.

    ``effective_from`` is an instant on a whole hour (local time): rates change only between two
    hours, so every hour of usage has exactly one rate per item (``billing.pricing``).
    """

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="+")
    name = models.CharField(_("名称"), max_length=100)
    effective_from = models.DateTimeField(_("生效时间"), help_text=_("从该整点（北京时间）起生效"))
    discount_percent = models.DecimalField(
        _("折扣（%）"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("价格方案")
        verbose_name_plural = _("价格方案")
        ordering = ["tenant__path", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["tenant", "effective_from"], name="priceplan_unique_start")]

    def __str__(self):
        return f"{self.name} ({timezone.localtime(self.effective_from):%Y-%m-%d %H:%M})"


class PriceRate(models.Model):
    plan = models.ForeignKey(PricePlan, on_delete=models.CASCADE, related_name="rates")
    item = models.CharField(_("计费项"), max_length=8, choices=Item.choices)
    rate = models.DecimalField(_("单价（元/单位·小时）"), **RATE, validators=[MinValueValidator(Decimal("0"))])

    class Meta:
        verbose_name = _("单价")
        verbose_name_plural = _("单价")
        constraints = [
            models.UniqueConstraint(fields=["plan", "item"], name="pricerate_unique_item"),
            models.CheckConstraint(condition=models.Q(rate__gte=0), name="pricerate_not_negative"),
        ]

    def __str__(self):
        return f"{self.get_item_display()} {self.rate}"


class FreeAllowance(models.Model):
    """The first ``hours`` of an item per course per term are free (inherited down the tenant tree)."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="+")
    item = models.CharField(_("计费项"), max_length=8, choices=Item.choices)
    hours = models.DecimalField(_("每课程每学期免费量"), **QUANTITY, validators=[MinValueValidator(Decimal("0"))])

    class Meta:
        verbose_name = _("免费额度")
        verbose_name_plural = _("免费额度")
        constraints = [models.UniqueConstraint(fields=["tenant", "item"], name="allowance_unique_item")]

    def __str__(self):
        return f"{self.tenant.name} {self.get_item_display()} {self.hours}"


class DocumentCounter(models.Model):
    """The last number given per kind and year; locked while a number is taken, so there are no gaps."""

    kind = models.CharField(max_length=8)
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "year"], name="counter_unique_kind_year")]

    def __str__(self):
        return f"{self.kind}-{self.year}: {self.last}"


class ImmutableModel(models.Model):
    """Written once: any later save or delete is refused (the database refuses UPDATE too)."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise Conflict(_("已开具的单据不能修改，请开具红字冲销单。"), code=BillingError.INVOICE_IMMUTABLE)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise Conflict(_("已开具的单据不能删除，请开具红字冲销单。"), code=BillingError.INVOICE_IMMUTABLE)


class Invoice(ImmutableModel):
    class Status(models.TextChoices):
        ISSUED = "issued", _("已开具")
        PARTLY_CREDITED = "partly_credited", _("部分冲销")
        CREDITED = "credited", _("已全额冲销")

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="+")
    month = models.DateField(_("账期"), help_text=_("账期所在月的第一天"))
    number = models.CharField(_("账单号"), max_length=20, unique=True)
    currency = models.CharField(_("币种"), max_length=3, default="CNY")
    total = models.DecimalField(_("合计（元）"), **MONEY)
    issued_at = models.DateTimeField(_("开具时间"))
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = _("账单")
        verbose_name_plural = _("账单")
        ordering = ["-month", "number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "month"], name="invoice_unique_tenant_month")]

    def __str__(self):
        return self.number

    @property
    def credited(self) -> Decimal:
        # Filled by selectors (annotate); computed here only when absent.
        value = getattr(self, "credited_total", None)
        if value is None:
            value = sum((note.amount for note in self.credit_notes.all()), Decimal("0"))
        return value or Decimal("0")

    @property
    def status(self) -> str:
        credited = self.credited
        if credited <= 0:
            return self.Status.ISSUED
        return self.Status.CREDITED if credited >= self.total else self.Status.PARTLY_CREDITED

    def get_status_display(self) -> str:
        return self.Status(self.status).label

    @property
    def balance(self) -> Decimal:
        return self.total - self.credited


class InvoiceLine(ImmutableModel):
    """One course and item at one rate: quantity, free quantity, rate, discount, amount (rounded once)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveIntegerField()
    course = models.ForeignKey("tenants.Course", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(_("说明"), max_length=200)
    item = models.CharField(_("计费项"), max_length=8, choices=Item.choices)
    unit = models.CharField(_("单位"), max_length=20)
    period_start = models.DateField()
    period_end = models.DateField()
    quantity = models.DecimalField(_("用量"), **QUANTITY)
    free_quantity = models.DecimalField(_("免费量"), **QUANTITY, default=Decimal("0"))
    rate = models.DecimalField(_("单价"), **RATE)
    discount_percent = models.DecimalField(_("折扣（%）"), max_digits=5, decimal_places=2, default=Decimal("0"))
    amount = models.DecimalField(_("金额（元）"), **MONEY)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="line_unique_position")]

    def __str__(self):
        return f"{self.invoice_id}#{self.position}"


class CreditNote(ImmutableModel):
    """A correction of an issued invoice: an amount credited back, with the reason."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(_("冲销单号"), max_length=20, unique=True)
    amount = models.DecimalField(_("冲销金额（元）"), **MONEY)
    reason = models.CharField(_("原因"), max_length=500)
    issued_at = models.DateTimeField(_("开具时间"))
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = _("红字冲销单")
        verbose_name_plural = _("红字冲销单")
        ordering = ["issued_at", "number"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="creditnote_positive")]

    def __str__(self):
        return self.number


class Budget(models.Model):
    """A monthly budget of a tenant, or of one course: notices at 80% and 100%, optionally a block."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="+")
    course = models.ForeignKey(
        "tenants.Course", verbose_name=_("课程"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.DecimalField(_("每月预算（元）"), **MONEY, validators=[MinValueValidator(Decimal("0.01"))])
    block_new_desktops = models.BooleanField(_("超出后禁止新建桌面"), default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("预算")
        verbose_name_plural = _("预算")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "course"], name="budget_unique_scope"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(course__isnull=True), name="budget_unique_tenant"
            ),
        ]

    def __str__(self):
        return f"{self.tenant.name} / {self.course or _('全院')}: ¥{self.amount}"


class BudgetAlert(models.Model):
    """A threshold crossed in a month: written once, so each notice goes out once."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    spent = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "month", "threshold"], name="budgetalert_unique"),
        ]

    def __str__(self):
        return f"{self.budget_id} {self.month} {self.threshold}%"

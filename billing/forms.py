"""Forms of the billing pages: usage filter, issuing, price plans, credit notes, budgets."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.errors import BillingError
from billing.models import Item
from billing.selectors import GROUPS
from common import limits

GROUP_LABELS = {"tenant": _("按租户"), "course": _("按课程"), "user": _("按用户"), "item": _("按计费项")}


class UsageFilterForm(forms.Form):
    start = forms.DateField(label=_("开始日期"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("结束日期"), widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(label=_("分组"), choices=[(g, GROUP_LABELS[g]) for g in GROUPS], initial="course")
    tenant = forms.CharField(label=_("租户标识"), required=False, max_length=50)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise forms.ValidationError(_("结束日期早于开始日期。"), code=BillingError.DATE_RANGE_REVERSED)
        return data


class IssueForm(forms.Form):
    month = forms.CharField(
        label=_("账期（YYYY-MM）"), max_length=7, widget=forms.TextInput(attrs={"placeholder": "2026-10"})
    )


class CreditNoteForm(forms.Form):
    amount = forms.DecimalField(label=_("冲销金额（元）"), min_value=0.01, max_digits=14, decimal_places=2)
    reason = forms.CharField(label=_("原因"), max_length=500)


class PricePlanForm(forms.Form):
    tenant = forms.ChoiceField(label=_("租户"))
    name = forms.CharField(label=_("名称"), max_length=100)
    # A whole hour: the browser's picker steps by hours; the service refuses anything else.
    effective_from = forms.DateTimeField(
        label=_("生效时间"),
        help_text=_("整点，北京时间；只填日期表示当日零点"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 3600}, format="%Y-%m-%dT%H:%M"),
        validators=[limits.validate_year],
    )
    discount_percent = forms.DecimalField(
        label=_("折扣（%）"), min_value=0, max_value=100, decimal_places=2, required=False, initial=0
    )

    def __init__(self, *args, tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [(t.slug, t.name) for t in tenants]
        for item in Item:
            # Text, not a number field: the service says precisely what is wrong with a rate.
            self.fields[f"rate_{item.value}"] = forms.CharField(
                label=_("%(item)s 单价（元/单位·小时）") % {"item": item.label},
                required=False,
                max_length=30,
                help_text=_("留空则继承上级租户"),
            )

    def rates(self) -> dict:
        return {item.value: self.cleaned_data.get(f"rate_{item.value}") for item in Item}


class BudgetForm(forms.Form):
    tenant = forms.ChoiceField(label=_("租户"))
    course = forms.ChoiceField(label=_("课程（可选）"), required=False)
    amount = forms.DecimalField(
        label=_("每月预算（元）"), min_value=0.01, max_value=limits.MONEY_MAX, max_digits=14, decimal_places=2
    )
    block_new_desktops = forms.BooleanField(label=_("超出预算后禁止新建桌面"), required=False)

    def __init__(self, *args, tenants=(), courses=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [(t.slug, t.name) for t in tenants]
        self.fields["course"].choices = [("", _("整个租户"))] + [(str(c.pk), f"{c.code} {c.name}") for c in courses]

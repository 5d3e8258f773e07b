"""Forms of the audit app: event search, policy, manual findings, password and one-time codes."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from audit.actions import Action
from audit.models import AuditEvent, ComplianceReport
from audit.policy import EDITABLE, floor
from common.widgets import CachedSelect, FixedChoiceField

SHANGHAI = ZoneInfo("Asia/Shanghai")


# The log's actions grouped for the filter, by the part of their value before the dot.
ACTION_GROUPS = [
    (_("登录与账号安全"), ("auth", "security", "identity", "account", "role")),
    (_("租户、课程与审批"), ("tenant", "course", "quota", "request", "approval_policy")),
    (_("云桌面与镜像"), ("desktop", "pool", "console", "snapshot", "volume", "image", "flavor", "endpoint")),
    (_("虚拟化资源"), ("compute", "inventory")),
    (_("网络"), ("network", "address", "security_group", "elastic_ip", "port_forward")),
    (_("计费"), ("invoice", "budget", "price_plan", "allowance")),
    (_("审计与等保"), ("audit", "compliance")),
]


def action_choices() -> list:
    """[("", 全部), (group, [(value, label), ...]), ...]; an action of no listed group goes under 其他."""
    grouped, placed = [], set()
    for label, prefixes in ACTION_GROUPS:
        members = [(v, lbl) for v, lbl in Action.choices if v.split(".")[0] in prefixes]
        placed.update(v for v, _l in members)
        if members:
            grouped.append((label, members))
    rest = [(v, lbl) for v, lbl in Action.choices if v not in placed]
    if rest:
        grouped.append((_("其他"), rest))
    return [("", _("全部")), *grouped]


class EventFilterForm(forms.Form):
    """Search filters; every field optional. Dates are Shanghai calendar days, inclusive."""

    date_from = forms.DateField(label=_("开始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("结束日期"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    actor = forms.CharField(label=_("操作者"), required=False, max_length=150)
    tenant = forms.CharField(label=_("租户"), required=False, max_length=50)
    # The choices (lazy labels) worked out once, not for every request's form.
    action = FixedChoiceField(label=_("操作"), required=False, choices=action_choices(), widget=CachedSelect)
    object = forms.CharField(label=_("对象"), required=False, max_length=255)
    result = FixedChoiceField(
        label=_("结果"), required=False, choices=[("", _("全部")), *AuditEvent.Result.choices], widget=CachedSelect
    )
    source_ip = forms.CharField(label=_("来源IP"), required=False, max_length=45)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("action", "result"):
            self.fields[name].widget.attrs["class"] = "form-select form-select-sm"

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(_("开始日期不能晚于结束日期。"))
        return cleaned

    def active_filters(self) -> dict:
        if not self.is_bound or not self.is_valid():
            return {}
        return {key: str(value) for key, value in self.cleaned_data.items() if value not in (None, "")}

    def apply(self, queryset):
        if not self.is_bound or not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data.get("date_from"):
            queryset = queryset.filter(occurred_at__gte=datetime.combine(data["date_from"], time.min, SHANGHAI))
        if data.get("date_to"):
            end = datetime.combine(data["date_to"] + timedelta(days=1), time.min, SHANGHAI)
            queryset = queryset.filter(occurred_at__lt=end)
        if data.get("actor"):
            queryset = queryset.filter(actor_username=data["actor"].strip())
        if data.get("tenant"):
            queryset = queryset.filter(tenant_slug=data["tenant"].strip())
        if data.get("action"):
            queryset = queryset.filter(action=data["action"])
        if data.get("object"):
            term = data["object"].strip()
            queryset = queryset.filter(Q(object_name__icontains=term) | Q(object_id=term) | Q(object_type=term))
        if data.get("result"):
            queryset = queryset.filter(result=data["result"])
        if data.get("source_ip"):
            queryset = queryset.filter(source_ip=data["source_ip"].strip())
        return queryset


class ReportForm(forms.Form):
    level = forms.TypedChoiceField(label=_("等级"), choices=ComplianceReport.Level.choices, coerce=int, initial=3)


class PolicyForm(forms.Form):
    def __init__(self, *args, policy, **kwargs):
        super().__init__(*args, **kwargs)
        for name, bound in floor().items():
            self.fields[name] = forms.IntegerField(
                label=bound.label,
                min_value=bound.minimum,
                max_value=bound.maximum,
                initial=getattr(policy, name),
                help_text=_("平台底线：%(min)s – %(max)s") % {"min": bound.minimum, "max": bound.maximum},
            )

    def changes(self) -> dict:
        return {name: self.cleaned_data[name] for name in EDITABLE}


class ManualAssessmentForm(forms.Form):
    check_id = forms.CharField(widget=forms.HiddenInput)
    status = forms.ChoiceField(label=_("符合情况"), widget=forms.Select(attrs={"class": "form-select form-select-sm"}))
    evidence = forms.CharField(
        label=_("证据"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "class": "form-control form-control-sm"}),
    )

    def __init__(self, *args, **kwargs):
        from audit.compliance import Status

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = Status.choices


class OTPForm(forms.Form):
    otp = forms.CharField(
        label=_("动态口令或恢复码"),
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class ReauthForm(forms.Form):
    password = forms.CharField(
        label=_("密码"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    otp = forms.CharField(
        label=_("动态口令"),
        required=False,
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

"""Forms of the tenants pages. They only validate input; the services decide."""

from decimal import ROUND_HALF_UP, Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from common import limits
from common.widgets import CachedSelect, FixedChoiceField
from tenants.models import (
    RESOURCE_LABELS,
    RESOURCES,
    ApprovalRequest,
    ApproverRole,
    ClassTime,
    RequestKind,
    Tenant,
    amount_max,
)
from tenants.roles import TenantRole


class BootstrapForm(forms.Form):
    """Gives every widget its Bootstrap class, so templates render fields as they are."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs.setdefault("class", css)


class TenantForm(BootstrapForm):
    slug = forms.SlugField(label=_("标识"), max_length=50, help_text=_("小写字母、数字和连字符，例如 ai"))
    name_zh = forms.CharField(label=_("中文名称"), max_length=100)
    name_en = forms.CharField(label=_("英文名称"), max_length=100, required=False)
    kind = forms.ChoiceField(label=_("类型"), choices=Tenant.Kind.choices, initial=Tenant.Kind.DEPARTMENT)


class MembershipForm(BootstrapForm):
    username = forms.CharField(label=_("用户名"), max_length=150)
    role = forms.ChoiceField(label=_("角色"), choices=TenantRole.choices)


class CourseForm(BootstrapForm):
    code = forms.CharField(label=_("课程代码"), max_length=32, help_text=_("例如 CS101"))
    name = forms.CharField(label=_("课程名称"), max_length=150)
    teacher = forms.CharField(label=_("教师用户名"), max_length=150, required=False, help_text=_("留空表示自己"))
    term_start = forms.DateField(
        label=_("学期开始"), widget=forms.DateInput(attrs={"type": "date"}), validators=[limits.validate_year]
    )
    term_end = forms.DateField(
        label=_("学期结束"), widget=forms.DateInput(attrs={"type": "date"}), validators=[limits.validate_year]
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("term_start"), data.get("term_end")
        if start and end and end < start:
            self.add_error("term_end", _("学期结束日期不能早于开始日期。"))
        elif start and end and limits.term_error(start, end):
            self.add_error("term_end", limits.term_error(start, end))
        return data


class RosterImportForm(BootstrapForm):
    file = forms.FileField(label=_("名单文件（CSV 或 XLSX：学号,姓名）"))
    replace = forms.BooleanField(label=_("替换现有名单（不在文件中的学生将移出课程）"), required=False)


class ClassTimeForm(BootstrapForm):
    # The empty choice keeps an untouched extra row empty, so the formset skips it.
    weekday = forms.TypedChoiceField(
        label=_("星期"), choices=[("", "—"), *ClassTime.Weekday.choices], coerce=int, empty_value=None
    )
    start_time = forms.TimeField(label=_("上课"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    end_time = forms.TimeField(label=_("下课"), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))

    def clean(self):
        data = super().clean()
        if data.get("start_time") and data.get("end_time") and data["end_time"] <= data["start_time"]:
            self.add_error("end_time", _("下课时间必须晚于上课时间。"))
        return data


ClassTimeFormSet = forms.formset_factory(ClassTimeForm, extra=1, max_num=14, can_delete=True)


MIB_PER_GIB = 1024


def mib_as_gib(mib: int | None) -> Decimal | None:
    """A MiB amount written in GiB for a form's input: 256 → 0.25, 1536 → 1.5, 4096 → 4."""
    if mib is None:
        return None
    gib = (Decimal(mib) / MIB_PER_GIB).normalize()
    return gib.quantize(Decimal(1)) if gib == gib.to_integral_value() else gib


class GibField(forms.DecimalField):
    """Memory typed in GiB, as people think of it (decimals allowed: 0.5), cleaned to whole MiB,
    as quotas count it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", limits.AMOUNT_MAX)
        super().__init__(**kwargs)

    def clean(self, value):
        gib = super().clean(value)
        if gib is None:
            return None
        return int((gib * MIB_PER_GIB).to_integral_value(rounding=ROUND_HALF_UP))


# The form field of each resource: memory is typed in GiB (field "ram_gib") and kept in MiB.
FIELD_OF = {name: "ram_gib" if name == "ram_mib" else name for name in RESOURCES}


def amount_fields(*, initial: dict | None = None, required: bool = False, css: str = "") -> dict:
    """One input per resource, memory in GiB; ``initial`` in the resources' own units (MiB)."""
    result = {}
    for name in RESOURCES:
        value = (initial or {}).get(name)
        attrs = {"attrs": {"class": css}} if css else {}
        if name == "ram_mib":
            field = GibField(
                label=_("内存 (GiB)"),
                required=required,
                initial=mib_as_gib(value),
                **({"widget": forms.NumberInput(**attrs)} if css else {}),
            )
        else:
            field = forms.IntegerField(
                label=RESOURCE_LABELS[name],
                min_value=0,
                max_value=amount_max(name),
                required=required,
                initial=value,
                **({"widget": forms.NumberInput(**attrs)} if css else {}),
            )
        result[FIELD_OF[name]] = field
    return result


class LimitsForm(BootstrapForm):
    """One optional limit per resource; empty means no limit at this level."""

    def __init__(self, *args, initial_limits: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(amount_fields(initial=initial_limits))

    def limits(self) -> dict:
        return {name: self.cleaned_data.get(FIELD_OF[name]) for name in RESOURCES}


class QuotaScopeForm(BootstrapForm):
    scope = forms.ChoiceField(
        label=_("范围"), choices=[("tenant", _("租户")), ("course", _("课程")), ("user", _("用户"))]
    )
    tenant = forms.SlugField(label=_("租户"))
    course = forms.IntegerField(label=_("课程"), required=False)
    username = forms.CharField(label=_("用户名"), required=False)


class RequestFilterForm(BootstrapForm):
    # Fixed choices: rendered once per language and value, not an option template each per request.
    state = FixedChoiceField(
        label=_("状态"),
        choices=[("", _("全部"))] + ApprovalRequest.State.choices,
        required=False,
        widget=CachedSelect,
    )
    kind = FixedChoiceField(
        label=_("类型"), choices=[("", _("全部"))] + RequestKind.choices, required=False, widget=CachedSelect
    )
    q = forms.CharField(label=_("搜索"), required=False, max_length=100)


class RejectForm(BootstrapForm):
    reason = forms.CharField(label=_("驳回原因"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class ApproveForm(BootstrapForm):
    comment = forms.CharField(
        label=_("审批意见"), widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000
    )


class PolicyStepForm(BootstrapForm):
    approver_role = forms.ChoiceField(label=_("审批人"), choices=[("", "—"), *ApproverRole.choices])
    above_desktops = forms.IntegerField(label=_("桌面数超过"), min_value=0, required=False)
    above_vcpu = forms.IntegerField(label=_("vCPU 超过"), min_value=0, required=False)
    above_gpus = forms.IntegerField(label=_("GPU 超过"), min_value=0, required=False)
    above_cost = forms.DecimalField(
        label=_("月费用超过（元）"), min_value=0, max_digits=12, decimal_places=2, required=False
    )


class AutoRuleForm(BootstrapForm):
    name = forms.CharField(label=_("规则名称"), max_length=100)
    kind = forms.ChoiceField(label=_("申请类型"), choices=[("", _("任意类型")), *RequestKind.choices], required=False)
    max_desktops = forms.IntegerField(label=_("最多桌面数"), min_value=0, initial=0)
    max_vcpu = forms.IntegerField(label=_("最多 vCPU"), min_value=0, initial=0)
    max_ram_gib = GibField(label=_("最多内存 (GiB)"), initial=0)
    max_gpus = forms.IntegerField(label=_("最多 GPU"), min_value=0, initial=0)
    # Added later: a form without them means 0 (no disk, no address approved automatically).
    max_disk_gib = forms.IntegerField(label=_("最多磁盘 (GiB)"), min_value=0, initial=0, required=False)
    max_ips = forms.IntegerField(
        label=_("最多 IP 地址"),
        min_value=0,
        initial=0,
        required=False,
        help_text=_("每个桌面占用 1 个地址：少于桌面数时按桌面数保存；多出的部分是弹性 IP。"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Rules keep memory in MiB; the form shows and takes it in GiB.
        if "max_ram_mib" in self.initial:
            self.initial["max_ram_gib"] = mib_as_gib(self.initial.pop("max_ram_mib"))

    def clean_max_disk_gib(self):
        return self.cleaned_data.get("max_disk_gib") or 0

    def clean_max_ips(self):
        return self.cleaned_data.get("max_ips") or 0

    def clean(self):
        data = super().clean()
        if "max_ram_gib" in data:
            data["max_ram_mib"] = data.pop("max_ram_gib")
        return data


PolicyStepFormSet = forms.formset_factory(PolicyStepForm, extra=1, max_num=6, can_delete=True)
AutoRuleFormSet = forms.formset_factory(AutoRuleForm, extra=1, max_num=6, can_delete=True)


class PolicyForm(BootstrapForm):
    name = forms.CharField(label=_("策略名称"), max_length=100)


class RequestForm(BootstrapForm):
    """More quota. Desktops are asked for where their image and flavor are chosen (the course wizard,
    the desktop request page), so that what they take is planned from the flavor, never typed."""

    kind = forms.ChoiceField(
        label=_("申请类型"),
        choices=[(k, label) for k, label in RequestKind.choices if k == RequestKind.QUOTA_INCREASE],
    )
    course = forms.TypedChoiceField(label=_("课程（可选）"), coerce=int, required=False, empty_value=None)
    title = forms.CharField(label=_("标题"), max_length=200)
    reason = forms.CharField(label=_("说明"), widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000)

    def __init__(self, *args, courses=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["course"].choices = [("", "—"), *((c.pk, f"{c.code} {c.name}") for c in courses)]
        self.fields.update(amount_fields(css="form-control"))

    def amounts(self) -> dict:
        return {name: self.cleaned_data.get(FIELD_OF[name]) or 0 for name in RESOURCES}

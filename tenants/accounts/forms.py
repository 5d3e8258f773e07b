"""Forms of the account pages. They only validate input; tenants.accounts.services decides."""

from django import forms
from django.utils.translation import gettext_lazy as _

from tenants.forms import BootstrapForm
from tenants.roles import PlatformRole, TenantRole

SERVICE_ROLES = [(r, label) for r, label in TenantRole.choices if r in ("teacher", "finance", "auditor")]


class TenantChoiceForm(BootstrapForm):
    tenant = forms.ChoiceField(label=_("租户"))

    def __init__(self, *args, tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [(t.slug, t.name) for t in tenants]


class AccountForm(TenantChoiceForm):
    username = forms.CharField(label=_("用户名"), max_length=150)
    display_name = forms.CharField(label=_("姓名"), max_length=150)
    student_number = forms.RegexField(label=_("学号/工号"), regex=r"^[A-Za-z0-9_-]{1,32}$", required=False)
    role = forms.ChoiceField(label=_("角色"), choices=TenantRole.choices)
    password = forms.CharField(
        label=_("初始密码"), strip=False, widget=forms.PasswordInput, help_text=_("首次登录时须修改。")
    )


class StaffImportForm(TenantChoiceForm):
    role = forms.ChoiceField(label=_("角色"), choices=TenantRole.choices, initial=TenantRole.TEACHER)
    file = forms.FileField(label=_("CSV 或 XLSX 文件"), help_text=_("两列：工号、姓名"))


class ServiceAccountForm(TenantChoiceForm):
    username = forms.CharField(label=_("用户名"), max_length=150)
    role = forms.ChoiceField(label=_("角色"), choices=SERVICE_ROLES)
    purpose = forms.CharField(label=_("用途"), max_length=200)


class PasswordResetForm(BootstrapForm):
    password = forms.CharField(label=_("新密码"), strip=False, widget=forms.PasswordInput)


class PlatformRoleForm(BootstrapForm):
    role = forms.ChoiceField(label=_("平台角色"), choices=PlatformRole.choices)


class DirectoryForm(BootstrapForm):
    departments = forms.CharField(
        label=_("目录中的院系代码"), max_length=255, required=False, help_text=_("多个代码用逗号分隔，例如 cs,cs-ai")
    )
    place_new_staff = forms.BooleanField(label=_("新教职工首次登录时自动加入本租户"), required=False)
    staff_role = forms.ChoiceField(label=_("新教职工的角色"), choices=SERVICE_ROLES)

"""HA's forms: a cluster's HA settings, a host's BMC, the confirmation of clearing a host."""

from django import forms
from django.utils.translation import gettext_lazy as _

from compute.models import ClusterHa


class HaSettingsForm(forms.Form):
    enabled = forms.BooleanField(label=_("启用高可用"), required=False)
    detection_seconds = forms.IntegerField(
        label=_("故障检测时间（秒）"),
        required=False,
        min_value=5,
        max_value=600,
        help_text=_("留空使用平台默认值。"),
    )
    fencing = forms.ChoiceField(label=_("隔离方式"), choices=ClusterHa.Fencing.choices)


class BmcForm(forms.Form):
    address = forms.CharField(label=_("BMC 地址"), max_length=255)
    port = forms.IntegerField(label=_("BMC 端口"), min_value=1, max_value=65535, initial=623)
    username = forms.CharField(label=_("BMC 用户名"), max_length=16)
    password = forms.CharField(
        label=_("BMC 密码"),
        required=False,
        widget=forms.PasswordInput,
        help_text=_("留空保留已保存的密码。"),
    )


class ClearForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("我已确认该主机已恢复正常，其上的桌面已在其他主机运行或可以重新启动。"), required=True
    )

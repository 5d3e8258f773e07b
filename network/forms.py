"""Forms of the network pages: shape and basic validation only; the rules live in services."""

from django import forms
from django.utils.translation import gettext_lazy as _

from network.models import Network, SecurityGroupRule, Segment, SegmentType


class NetworkForm(forms.Form):
    tenant = forms.ChoiceField(label=_("租户"))
    name = forms.CharField(label=_("名称"), max_length=64)
    kind = forms.ChoiceField(label=_("类型"), choices=Network.Kind.choices, initial=Network.Kind.ROUTER)
    segment_type = forms.ChoiceField(label=_("隔离方式"), choices=SegmentType.choices, initial=SegmentType.NONE)
    platform_segment = forms.ChoiceField(
        label=_("物理网段"), required=False, help_text=_("扁平网络或 VLAN/VXLAN 须选择平台分配的网段")
    )
    segment_id = forms.IntegerField(label=_("VLAN/VXLAN 号"), required=False, min_value=1, help_text=_("留空自动分配"))
    bridge = forms.CharField(label=_("主机网桥"), max_length=15, required=False, help_text=_("仅系统管理员"))
    cidr = forms.CharField(label=_("网段"), max_length=43, help_text=_("例如 10.20.0.0/24"))
    gateway = forms.CharField(label=_("网关"), max_length=15, required=False, help_text=_("留空为第一个地址"))
    dns_servers = forms.CharField(label=_("DNS 服务器"), max_length=255, required=False, help_text=_("逗号分隔"))

    def __init__(self, *args, tenants=(), allow_shared=False, segments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["platform_segment"].choices = [("", "—")] + [
            (s.pk, f"{s.name}（{s.get_kind_display()} {s.value}）") for s in segments
        ]
        if not allow_shared:
            # Tenant admins pick platform segments; only the system admin names a host bridge.
            del self.fields["bridge"]
        choices = [(t.slug, t.name) for t in tenants]
        if allow_shared:
            choices.insert(0, ("", _("全平台共享")))
        self.fields["tenant"].choices = choices
        self.fields["tenant"].required = not allow_shared


class SubnetForm(forms.Form):
    cidr = forms.CharField(label=_("网段"), max_length=43)
    gateway = forms.CharField(label=_("网关"), max_length=15, required=False)
    dns_servers = forms.CharField(label=_("DNS 服务器"), max_length=255, required=False)


class ReserveForm(forms.Form):
    subnet = forms.ChoiceField(label=_("子网"))
    ip = forms.GenericIPAddressField(label=_("IP"), protocol="IPv4")
    mac = forms.CharField(label=_("MAC（可选）"), max_length=17, required=False)
    hostname = forms.CharField(label=_("主机名"), max_length=63, required=False)

    def __init__(self, *args, subnets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subnet"].choices = [(s.pk, s.cidr) for s in subnets]


class SecurityGroupForm(forms.Form):
    tenant = forms.ChoiceField(label=_("租户"))
    name = forms.CharField(label=_("名称"), max_length=64)
    description = forms.CharField(label=_("说明"), max_length=255, required=False)

    def __init__(self, *args, tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [(t.slug, t.name) for t in tenants]


class RuleForm(forms.Form):
    direction = forms.ChoiceField(label=_("方向"), choices=SecurityGroupRule.Direction.choices)
    protocol = forms.ChoiceField(label=_("协议"), choices=SecurityGroupRule.Protocol.choices)
    port_min = forms.IntegerField(label=_("起始端口"), required=False)
    port_max = forms.IntegerField(label=_("结束端口"), required=False)
    remote_cidr = forms.CharField(label=_("远端网段"), max_length=43, required=False, help_text=_("留空为任意"))
    remote_group = forms.ChoiceField(label=_("远端安全组"), required=False)

    def __init__(self, *args, groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["remote_group"].choices = [("", "—")] + [(g.pk, g.name) for g in groups]


class SegmentForm(forms.Form):
    name = forms.CharField(label=_("名称"), max_length=64)
    kind = forms.ChoiceField(label=_("类型"), choices=Segment.Kind.choices)
    site = forms.CharField(label=_("站点"), max_length=50, initial="main")
    bridge = forms.CharField(label=_("主机网桥"), max_length=15, required=False)
    portgroup = forms.CharField(label=_("vCenter 端口组"), max_length=100, required=False)
    first = forms.IntegerField(label=_("起始号"), required=False)
    last = forms.IntegerField(label=_("结束号"), required=False)
    description = forms.CharField(label=_("说明"), max_length=255, required=False)


class AddressPoolForm(forms.Form):
    name = forms.CharField(label=_("名称"), max_length=64)
    cidr = forms.CharField(label=_("网段"), max_length=43, help_text=_("例如 10.30.0.0/16"))
    min_prefixlen = forms.IntegerField(
        label=_("最大子网"), initial=24, min_value=8, max_value=29, help_text=_("掩码长度：24 表示子网最大为 /24")
    )
    tenant = forms.ChoiceField(label=_("分配给"), required=False)

    def __init__(self, *args, tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [("", "—")] + [(t.slug, t.name) for t in tenants]

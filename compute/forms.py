"""Forms of the compute pages: they validate input; services hold the rules."""

from django import forms
from django.utils.translation import gettext_lazy as _

from common import limits
from common.units import memory_label
from compute.models import Cluster, Endpoint, Flavor, GpuProfile, ImageVersion, Site, StoragePool, Visibility


class _Bootstrap:
    """Bootstrap 5 classes on every widget."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(widget, forms.Select):
                widget.attrs.setdefault("class", "form-select")
            else:
                widget.attrs.setdefault("class", "form-control")


class BootstrapForm(_Bootstrap, forms.Form):
    pass


class BootstrapModelForm(_Bootstrap, forms.ModelForm):
    """The model's own checks (replica counts, unique names) run as form validation; the service checks again."""


def _flavor_label(f: Flavor) -> str:
    label = _("%(name)s（%(cpu)s vCPU / %(mem)s / %(disk)s GiB）") % {
        "name": f.name,
        "cpu": f.vcpus,
        "mem": memory_label(f.memory_mib),
        "disk": f.disk_gib,
    }
    return f"{label} · {f.gpu_profile.name}" if f.gpu_profile_id else label


class DesktopCreateForm(BootstrapForm):
    name = forms.CharField(label=_("名称"), max_length=100, required=False, help_text=_("留空则自动命名"))
    image_version = forms.ModelChoiceField(label=_("镜像"), queryset=ImageVersion.objects.none())
    flavor = forms.ModelChoiceField(label=_("规格"), queryset=Flavor.objects.none())

    def __init__(self, *args, image_versions, flavors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["image_version"].queryset = image_versions
        self.fields["flavor"].queryset = flavors
        self.fields["flavor"].label_from_instance = _flavor_label


class ResizeForm(BootstrapForm):
    flavor = forms.ModelChoiceField(label=_("新规格"), queryset=Flavor.objects.none())

    def __init__(self, *args, flavors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flavor"].queryset = flavors
        self.fields["flavor"].label_from_instance = _flavor_label


class SnapshotForm(BootstrapForm):
    name = forms.CharField(label=_("快照名称"), max_length=64)
    description = forms.CharField(label=_("说明"), max_length=255, required=False)


class VolumeForm(BootstrapForm):
    name = forms.CharField(label=_("名称"), max_length=64, required=False)
    size_gib = forms.IntegerField(label=_("容量 (GiB)"), min_value=1, max_value=limits.VOLUME_GIB_MAX, initial=10)


class EndpointForm(BootstrapForm):
    name = forms.SlugField(label=_("名称"), max_length=64)
    kind = forms.ChoiceField(label=_("类型"), choices=Endpoint.Kind.choices)
    url = forms.CharField(
        label=_("地址"), max_length=255, help_text=_("如 qemu:///system、qemu+ssh://host/system 或 https://vcenter/sdk")
    )
    username = forms.CharField(label=_("用户名"), max_length=150, required=False)
    password = forms.CharField(
        label=_("密码"), max_length=255, required=False, widget=forms.PasswordInput(render_value=False)
    )
    site = forms.SlugField(label=_("站点"), max_length=50, initial="main")
    domain_type = forms.ChoiceField(label=_("虚拟化类型"), choices=Endpoint.DomainType.choices, initial="kvm")
    max_concurrency = forms.IntegerField(label=_("最大并发操作数"), min_value=1, max_value=64, initial=4)
    storage_pool = forms.CharField(
        label=_("存储池"), max_length=100, required=False, help_text=_("libvirt 默认 default")
    )


class ImageForm(BootstrapForm):
    name = forms.CharField(label=_("名称"), max_length=100)
    os_type = forms.CharField(label=_("操作系统"), max_length=50, required=False)
    visibility = forms.ChoiceField(label=_("可见范围"), choices=Visibility.choices, initial=Visibility.PLATFORM)
    tenant = forms.SlugField(label=_("租户标识"), required=False, help_text=_("可见范围为“本租户”时填写"))
    description = forms.CharField(label=_("说明"), widget=forms.Textarea(attrs={"rows": 2}), required=False)
    kernel_path = forms.CharField(
        label=_("内核路径"),
        max_length=500,
        required=False,
        help_text=_("直接内核启动（可选）：主机上的绝对路径，如 /var/lib/cc-shared/vmlinuz"),
    )
    initrd_path = forms.CharField(label=_("initrd 路径"), max_length=500, required=False)
    kernel_cmdline = forms.CharField(
        label=_("内核命令行"), max_length=1000, required=False, help_text=_("如 console=ttyS0 quiet")
    )


class TemplateImportForm(BootstrapForm):
    endpoint = forms.ModelChoiceField(label=_("vCenter 端点"), queryset=Endpoint.objects.filter(kind="vcenter"))
    template = forms.CharField(label=_("模板名"), max_length=255)


class FlavorForm(BootstrapForm):
    name = forms.CharField(label=_("名称"), max_length=100)
    vcpus = forms.IntegerField(label=_("vCPU"), min_value=1, max_value=limits.VCPUS_MAX)
    memory_mib = forms.IntegerField(
        label=_("内存 (MiB)"), min_value=limits.MEMORY_MIB_MIN, max_value=limits.MEMORY_MIB_MAX
    )
    disk_gib = forms.IntegerField(label=_("系统盘 (GiB)"), min_value=1, max_value=limits.DISK_GIB_MAX)
    gpu_profile = forms.ModelChoiceField(
        label=_("GPU 规格"),
        queryset=GpuProfile.objects.order_by("name"),
        required=False,
        help_text=_("选择后，此规格的桌面放在 GPU 集群上"),
    )


class FlavorEditForm(FlavorForm):
    is_active = forms.BooleanField(label=_("启用"), required=False)


class SiteForm(BootstrapModelForm):
    class Meta:
        model = Site
        fields = ["slug", "name", "queue"]
        help_texts = {"queue": _("留空使用共享的 hypervisor 队列；校区自有 worker 时填 site.<标识>")}


class ClusterForm(BootstrapModelForm):
    class Meta:
        model = Cluster
        fields = ["site", "name", "kind", "policy", "cpu_overcommit", "memory_overcommit"]
        help_texts = {"policy": _("分散：放到最空闲的主机；集中：先填满一台主机")}


class StoragePoolForm(BootstrapModelForm):
    path = forms.CharField(
        label=_("目录（可选）"),
        max_length=255,
        required=False,
        help_text=_("libvirt 端点：填写后在主机上创建此目录存储池；留空表示存储池已存在"),
    )

    class Meta:
        model = StoragePool
        fields = ["endpoint", "name", "kind", "replicas", "is_default"]
        help_texts = {"replicas": _("本地存储为 1；分布式存储为 2 到 6")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["path"]  # the pool exists: only its metadata changes


class GpuProfileForm(BootstrapModelForm):
    class Meta:
        model = GpuProfile
        fields = ["name", "mode", "vgpu_type", "gpus"]
        help_texts = {"vgpu_type": _("vGPU 模式下的类型，如 nvidia-63 或 grid_t4-2q")}


class ImportForm(BootstrapForm):
    tenant = forms.SlugField(label=_("导入到租户（标识）"))
    dry_run = forms.BooleanField(label=_("仅预览，不写入"), required=False)

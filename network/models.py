"""Network data: segment ranges, networks, subnets, addresses (IP/MAC bindings), security groups,
elastic IPs and port forwards.

This app holds the data and the rules; compute pushes them to the hypervisors
(``compute/networking.py``). Nothing here refers to compute's models: a NIC names its
desktop by id and an endpoint by name, so the import rules (network → tenants, audit)
hold for models and migrations alike.
"""

import ipaddress
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager


class SegmentType(models.TextChoices):
    NONE = "none", _("无")
    VLAN = "vlan", "VLAN"
    VXLAN = "vxlan", "VXLAN"


SEGMENT_LIMITS = {SegmentType.VLAN: (1, 4094), SegmentType.VXLAN: (1, 16777215)}


class SegmentRange(models.Model):
    """The VLAN or VXLAN ids a site hands out to networks."""

    site = models.SlugField(_("站点"), max_length=50, help_text=_("计算站点的标识"))
    kind = models.CharField(_("类型"), max_length=8, choices=[(SegmentType.VLAN, "VLAN"), (SegmentType.VXLAN, "VXLAN")])
    first = models.PositiveIntegerField(_("起始"))
    last = models.PositiveIntegerField(_("结束"))

    objects = LockingManager()

    class Meta:
        verbose_name = _("网段号范围")
        verbose_name_plural = _("网段号范围")
        constraints = [
            models.UniqueConstraint(fields=["site", "kind"], name="segmentrange_unique_site_kind"),
            models.CheckConstraint(condition=models.Q(first__lte=models.F("last")), name="segmentrange_ordered"),
        ]

    def __str__(self):
        return f"{self.site} {self.kind} {self.first}-{self.last}"


class Segment(models.Model):
    """A piece of the physical network that belongs to the platform: a host bridge, a vCenter port
    group, or a range of VLAN or VXLAN ids. The system admin creates it and assigns it to tenants
    (a tenant may use what it or any tenant above it was given); a tenant admin's flat network,
    VLAN or VXLAN id comes only from an assigned segment."""

    class Kind(models.TextChoices):
        BRIDGE = "bridge", _("主机网桥")
        PORTGROUP = "portgroup", _("vCenter 端口组")
        VLAN = "vlan", _("VLAN 范围")
        VXLAN = "vxlan", _("VXLAN 范围")

    name = models.CharField(_("名称"), max_length=64, unique=True)
    site = models.SlugField(_("站点"), max_length=50, default="main")
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices)
    bridge = models.CharField(_("主机网桥"), max_length=15, blank=True)
    portgroup = models.CharField(_("vCenter 端口组"), max_length=100, blank=True)
    first = models.PositiveIntegerField(_("起始号"), null=True, blank=True)
    last = models.PositiveIntegerField(_("结束号"), null=True, blank=True)
    description = models.CharField(_("说明"), max_length=255, blank=True)
    tenants = models.ManyToManyField(
        "tenants.Tenant", verbose_name=_("分配给"), through="SegmentAssignment", related_name="+", blank=True
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("物理网段")
        verbose_name_plural = _("物理网段")
        ordering = ["site", "kind", "name"]

    def __str__(self):
        return self.name

    @property
    def value(self) -> str:
        """What the segment is, in one short text: the bridge, the port group or the id range."""
        if self.kind == self.Kind.BRIDGE:
            return self.bridge
        if self.kind == self.Kind.PORTGROUP:
            return self.portgroup
        return f"{self.first}-{self.last}"


class SegmentAssignment(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="assignments")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "tenant"], name="segmentassignment_unique")]

    def __str__(self):
        return f"{self.segment_id}->{self.tenant_id}"


class AddressPool(models.Model):
    """A range of private addresses the platform gives one tenant (and the tenants under it) for its
    subnets. Pools never overlap, so two tenants' subnets never do; ``min_prefixlen`` caps how large
    one subnet of the pool may be (22: at most a /22)."""

    name = models.CharField(_("名称"), max_length=64, unique=True)
    cidr = models.CharField(_("网段"), max_length=43)
    min_prefixlen = models.PositiveSmallIntegerField(
        _("最大子网"),
        default=24,
        validators=[MinValueValidator(8), MaxValueValidator(29)],
        help_text=_("子网掩码长度的下限：24 表示子网最大为 /24"),
    )
    tenant = models.ForeignKey(
        "tenants.Tenant",
        verbose_name=_("分配给"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="address_pools",
    )
    description = models.CharField(_("说明"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("地址池")
        verbose_name_plural = _("地址池")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.cidr})"

    @property
    def ip_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)


class ScopeLock(models.Model):
    """One row per IP scope (a tenant, or the platform) to serialise CIDR overlap checks."""

    scope = models.CharField(max_length=64, unique=True)

    def __str__(self):
        return self.scope


class Network(models.Model):
    class Kind(models.TextChoices):
        FLAT = "flat", _("扁平网络")
        ROUTER = "router", _("路由网络（VPC）")

    tenant = models.ForeignKey(
        "tenants.Tenant",
        verbose_name=_("租户"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="networks",
        help_text=_("为空表示全平台共享网络"),
    )
    name = models.CharField(_("名称"), max_length=64)
    kind = models.CharField(_("类型"), max_length=8, choices=Kind.choices, default=Kind.ROUTER)
    site = models.SlugField(_("站点"), max_length=50, default="main")
    segment_type = models.CharField(_("隔离方式"), max_length=8, choices=SegmentType.choices, default=SegmentType.NONE)
    segment_id = models.PositiveIntegerField(_("VLAN/VXLAN 号"), null=True, blank=True)
    # Flat networks attach to an existing host bridge (libvirt) or port group (vCenter).
    bridge = models.CharField(_("主机网桥"), max_length=15, blank=True)
    portgroup = models.CharField(_("vCenter 端口组"), max_length=100, blank=True)
    # The platform segment the network was made on (its bridge, port group or VLAN/VXLAN id).
    platform_segment = models.ForeignKey(
        Segment, verbose_name=_("物理网段"), null=True, blank=True, on_delete=models.PROTECT, related_name="networks"
    )
    description = models.CharField(_("说明"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("网络")
        verbose_name_plural = _("网络")
        ordering = ["tenant__slug", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="network_unique_name"),
            # The race-safe end of segment allocation: two networks never share an id.
            models.UniqueConstraint(fields=["site", "segment_type", "segment_id"], name="network_unique_segment"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_shared(self) -> bool:
        return self.tenant_id is None


class Subnet(models.Model):
    network = models.ForeignKey(Network, verbose_name=_("网络"), on_delete=models.CASCADE, related_name="subnets")
    # Copied from the network so overlap checks are one query per scope.
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    cidr = models.CharField(_("网段"), max_length=43)
    # The platform's address pool the subnet was carved from (none: placed by the system admin).
    pool = models.ForeignKey(
        AddressPool, verbose_name=_("地址池"), null=True, blank=True, on_delete=models.PROTECT, related_name="subnets"
    )
    gateway = models.GenericIPAddressField(_("网关"), protocol="IPv4")
    dns_servers = models.CharField(_("DNS 服务器"), max_length=255, blank=True)
    dhcp_start = models.GenericIPAddressField(_("DHCP 起始"), protocol="IPv4")
    dhcp_end = models.GenericIPAddressField(_("DHCP 结束"), protocol="IPv4")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("子网")
        verbose_name_plural = _("子网")
        ordering = ["network_id", "id"]

    def __str__(self):
        return self.cidr

    @property
    def ip_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def pool_size(self) -> int:
        """How many addresses the subnet hands out (its DHCP range)."""
        return int(ipaddress.IPv4Address(self.dhcp_end)) - int(ipaddress.IPv4Address(self.dhcp_start)) + 1

    @property
    def dns_list(self) -> list[str]:
        return [s for s in (x.strip() for x in self.dns_servers.split(",")) if s]


class SecurityGroup(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="security_groups"
    )
    name = models.CharField(_("名称"), max_length=64)
    description = models.CharField(_("说明"), max_length=255, blank=True)
    is_default = models.BooleanField(_("默认安全组"), default=False)
    # The nwfilter's UUID: kept across redefinitions so libvirt updates running VMs.
    filter_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    revision = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("安全组")
        verbose_name_plural = _("安全组")
        ordering = ["tenant__slug", "-is_default", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="securitygroup_unique_name")]

    def __str__(self):
        return self.name

    @property
    def filter_name(self) -> str:
        return f"cc-sg-{self.pk}"


class SecurityGroupRule(models.Model):
    class Direction(models.TextChoices):
        IN = "in", _("入方向")
        OUT = "out", _("出方向")

    class Protocol(models.TextChoices):
        TCP = "tcp", "TCP"
        UDP = "udp", "UDP"
        ICMP = "icmp", "ICMP"
        ALL = "all", _("全部")

    group = models.ForeignKey(SecurityGroup, verbose_name=_("安全组"), on_delete=models.CASCADE, related_name="rules")
    direction = models.CharField(_("方向"), max_length=3, choices=Direction.choices)
    protocol = models.CharField(_("协议"), max_length=4, choices=Protocol.choices, default=Protocol.TCP)
    port_min = models.PositiveIntegerField(
        _("起始端口"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    port_max = models.PositiveIntegerField(
        _("结束端口"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    remote_cidr = models.CharField(_("远端网段"), max_length=43, blank=True)
    remote_group = models.ForeignKey(
        SecurityGroup,
        verbose_name=_("远端安全组"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referenced_by",
    )
    description = models.CharField(_("说明"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("安全组规则")
        verbose_name_plural = _("安全组规则")
        ordering = ["group_id", "direction", "id"]

    def __str__(self):
        ports = f":{self.port_min}-{self.port_max}" if self.port_min else ""
        return f"{self.direction} {self.protocol}{ports} {self.remote_cidr or self.remote_group or '*'}"


class Address(models.Model):
    """One IP of a subnet: a desktop's NIC (with its MAC) or a reserved address.

    A NIC's binding is pushed to the DHCP of whichever endpoint its desktop runs on;
    ``pushed_to`` records where it was last pushed.
    """

    class Kind(models.TextChoices):
        NIC = "nic", _("桌面网卡")
        RESERVED = "reserved", _("保留地址")

    class State(models.TextChoices):
        ALLOCATED = "allocated", _("已分配")
        HELD = "held", _("释放保留中")

    class Dhcp(models.TextChoices):
        """Who gives the NIC its address by DHCP: the portal (pushed to the host's dnsmasq), or no one
        the portal can reach because the desktop is on vCenter, which has no DHCP service."""

        PORTAL = "portal", _("门户下发")
        VCENTER = "vcenter", _("vCenter（无 DHCP 服务）")

    subnet = models.ForeignKey(Subnet, verbose_name=_("子网"), on_delete=models.PROTECT, related_name="addresses")
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("租户"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("使用者"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    ip = models.GenericIPAddressField(_("IP"), protocol="IPv4")
    ip_int = models.PositiveBigIntegerField(editable=False)
    # NULL for reserved addresses without a MAC (unique ignores NULLs).
    mac = models.CharField(_("MAC"), max_length=17, null=True, blank=True, unique=True)
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices, default=Kind.NIC)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.ALLOCATED)
    desktop_id = models.PositiveBigIntegerField(_("桌面"), null=True, blank=True, db_index=True)
    nic_index = models.PositiveSmallIntegerField(default=0)
    hostname = models.CharField(_("主机名"), max_length=63, blank=True)
    security_group = models.ForeignKey(
        SecurityGroup,
        verbose_name=_("安全组"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="addresses",
    )
    hold_until = models.DateTimeField(_("保留至"), null=True, blank=True)
    pushed_to = models.CharField(_("已下发到"), max_length=64, blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    dhcp = models.CharField(_("DHCP"), max_length=8, choices=Dhcp.choices, default=Dhcp.PORTAL)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("地址")
        verbose_name_plural = _("地址")
        ordering = ["subnet_id", "ip_int"]
        constraints = [models.UniqueConstraint(fields=["subnet", "ip_int"], name="address_unique_ip")]
        indexes = [models.Index(fields=["desktop_id", "nic_index"])]

    def __str__(self):
        return f"{self.ip} ({self.mac or '-'})"

    def save(self, *args, **kwargs):
        self.ip_int = int(ipaddress.IPv4Address(self.ip))
        super().save(*args, **kwargs)

    @property
    def dhcp_status(self) -> str:
        """Where the binding stands: "pushed", "pending", "vcenter" (no DHCP service there: nothing is
        pushed) or "segment" (a flat network: the physical segment's DHCP, outside the portal)."""
        return dhcp_status_of(network_kind=self.subnet.network.kind, dhcp=self.dhcp, pushed_to=self.pushed_to)

    @property
    def dhcp_status_display(self) -> str:
        return str(DHCP_STATUS_LABELS[self.dhcp_status])


def dhcp_status_of(*, network_kind: str, dhcp: str, pushed_to: str) -> str:
    """``Address.dhcp_status`` from the columns it depends on (for reads of columns, not instances)."""
    if network_kind == Network.Kind.FLAT:
        return "segment"
    if dhcp == Address.Dhcp.VCENTER:
        return "vcenter"
    return "pushed" if pushed_to else "pending"


DHCP_STATUS_LABELS = {
    "pushed": _("已下发到主机的 DHCP"),
    "pending": _("待下发"),
    "vcenter": _("不下发：vCenter 没有 DHCP 服务，请在校园 DHCP 上为此 MAC 保留该 IP，或在桌面内静态配置"),
    "segment": _("不下发：扁平网络由物理网段的 DHCP 分配地址"),
}


class NetworkDeployment(models.Model):
    """A network realised on an endpoint (a libvirt network there): what the DHCP sync visits."""

    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="deployments")
    endpoint = models.CharField(_("端点"), max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("网络部署")
        verbose_name_plural = _("网络部署")
        constraints = [models.UniqueConstraint(fields=["network", "endpoint"], name="deployment_unique")]

    def __str__(self):
        return f"{self.network_id}@{self.endpoint}"


class PublicPool(models.Model):
    """Public (campus-routable) addresses that elastic IPs come from."""

    name = models.CharField(_("名称"), max_length=64, unique=True)
    site = models.SlugField(_("站点"), max_length=50, default="main")
    cidr = models.CharField(_("网段"), max_length=43)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("公网地址池")
        verbose_name_plural = _("公网地址池")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.cidr})"


class ElasticIP(models.Model):
    pool = models.ForeignKey(PublicPool, verbose_name=_("地址池"), on_delete=models.PROTECT, related_name="ips")
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="elastic_ips"
    )
    ip = models.GenericIPAddressField(_("公网 IP"), protocol="IPv4")
    address = models.ForeignKey(
        Address,
        verbose_name=_("绑定网卡"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="elastic_ips",
    )
    # Whether the hypervisor side (1:1 NAT to the bound NIC) is in place, on which endpoint;
    # ``apply_note`` says why not.
    applied = models.BooleanField(_("已生效"), default=False)
    applied_to = models.CharField(_("生效端点"), max_length=64, blank=True)
    apply_note = models.CharField(_("生效说明"), max_length=255, blank=True)
    # The tenant's "ips" quota this address holds (released with it).
    quota_reservation = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("弹性 IP")
        verbose_name_plural = _("弹性 IP")
        ordering = ["pool_id", "ip"]
        constraints = [models.UniqueConstraint(fields=["pool", "ip"], name="elasticip_unique_ip")]

    def __str__(self):
        return self.ip


class PortForward(models.Model):
    class Protocol(models.TextChoices):
        TCP = "tcp", "TCP"
        UDP = "udp", "UDP"

    elastic_ip = models.ForeignKey(
        ElasticIP, verbose_name=_("公网 IP"), on_delete=models.CASCADE, related_name="port_forwards"
    )
    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="+")
    protocol = models.CharField(_("协议"), max_length=3, choices=Protocol.choices, default=Protocol.TCP)
    public_port = models.PositiveIntegerField(
        _("公网端口"), validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    address = models.ForeignKey(Address, verbose_name=_("目标网卡"), on_delete=models.CASCADE, related_name="+")
    private_port = models.PositiveIntegerField(
        _("桌面端口"), validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    applied = models.BooleanField(_("已生效"), default=False)
    applied_to = models.CharField(_("生效端点"), max_length=64, blank=True)
    apply_note = models.CharField(_("生效说明"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("端口转发")
        verbose_name_plural = _("端口转发")
        ordering = ["elastic_ip_id", "public_port"]
        constraints = [
            models.UniqueConstraint(fields=["elastic_ip", "protocol", "public_port"], name="portforward_unique_port")
        ]

    def __str__(self):
        return f"{self.elastic_ip}:{self.public_port} → {self.address.ip}:{self.private_port}"

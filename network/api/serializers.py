"""Serializers of the network API: what is read, and what each write takes."""

from rest_framework import serializers

from common.api.serializers import FastReadMixin
from network import selectors
from network.models import (
    DHCP_STATUS_LABELS,
    Address,
    AddressPool,
    ElasticIP,
    Network,
    PortForward,
    PublicPool,
    SecurityGroup,
    SecurityGroupRule,
    Segment,
    SegmentType,
    Subnet,
)

# --- serializers ----------------------------------------------------------------------------------


class SubnetSerializer(FastReadMixin, serializers.ModelSerializer):
    usage = serializers.SerializerMethodField()
    dns_servers = serializers.SerializerMethodField()

    class Meta:
        model = Subnet
        fields = [
            "id",
            "network",
            "cidr",
            "pool",
            "gateway",
            "dns_servers",
            "dhcp_start",
            "dhcp_end",
            "usage",
            "created_at",
        ]

    def get_usage(self, obj) -> dict:
        return selectors.subnet_usage(obj)

    def get_dns_servers(self, obj) -> list[str]:
        return obj.dns_list


class NetworkSerializer(FastReadMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )  # null: a shared (platform) network
    subnets = SubnetSerializer(many=True, read_only=True)
    shared = serializers.BooleanField(source="is_shared", read_only=True)

    class Meta:
        model = Network
        fields = [
            "id",
            "name",
            "tenant",
            "shared",
            "kind",
            "site",
            "segment_type",
            "segment_id",
            "platform_segment",
            "bridge",
            "portgroup",
            "description",
            "subnets",
            "created_at",
        ]


class NetworkCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    tenant = serializers.SlugField(
        required=False, help_text="tenant slug; default: the caller's tenant (system admin: a shared network)"
    )
    kind = serializers.ChoiceField(choices=Network.Kind.values, default=Network.Kind.ROUTER)
    site = serializers.SlugField(max_length=50, default="main")
    segment_type = serializers.ChoiceField(choices=SegmentType.values, default=SegmentType.NONE)
    segment_id = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1)
    platform_segment = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=2**31 - 1,
        help_text="a platform segment id (GET /api/v1/segments/): its bridge, port group or VLAN/VXLAN range",
    )
    bridge = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)
    portgroup = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    description = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
    cidr = serializers.CharField(max_length=43)
    gateway = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)
    dns_servers = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
    dhcp_start = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)
    dhcp_end = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)


class SubnetCreateSerializer(serializers.Serializer):
    cidr = serializers.CharField(max_length=43)
    gateway = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)
    dns_servers = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
    dhcp_start = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)
    dhcp_end = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)


class ReserveSerializer(serializers.Serializer):
    ip = serializers.IPAddressField(protocol="IPv4")
    mac = serializers.CharField(max_length=17, required=False, default="", allow_blank=True)
    hostname = serializers.CharField(max_length=63, required=False, default="", allow_blank=True)


class AddressSerializer(serializers.ModelSerializer):
    network = serializers.CharField(source="subnet.network.name", read_only=True)
    network_id = serializers.IntegerField(source="subnet.network_id", read_only=True)
    cidr = serializers.CharField(source="subnet.cidr", read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    security_group = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    security_group_id = serializers.IntegerField(read_only=True, allow_null=True)
    dhcp_status = serializers.ChoiceField(
        choices=list(DHCP_STATUS_LABELS),
        read_only=True,
        help_text="pushed / pending to the host's DHCP; vcenter: not pushed, vCenter has no DHCP service; "
        "segment: a flat network, the physical segment's DHCP",
    )
    dhcp_status_display = serializers.CharField(read_only=True)

    class Meta:
        model = Address
        fields = [
            "id",
            "ip",
            "mac",
            "kind",
            "state",
            "network",
            "network_id",
            "subnet",
            "cidr",
            "tenant",
            "desktop_id",
            "nic_index",
            "hostname",
            "security_group",
            "security_group_id",
            "pushed_to",
            "pushed_at",
            "dhcp_status",
            "dhcp_status_display",
            "hold_until",
            "created_at",
        ]


class NicGroupSerializer(serializers.Serializer):
    security_group = serializers.IntegerField(min_value=1, max_value=2**31 - 1)


class RuleSerializer(serializers.ModelSerializer):
    remote_group = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    remote_group_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = SecurityGroupRule
        fields = [
            "id",
            "direction",
            "protocol",
            "port_min",
            "port_max",
            "remote_cidr",
            "remote_group",
            "remote_group_id",
            "description",
            "created_at",
        ]


class RuleCreateSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(choices=SecurityGroupRule.Direction.values)
    protocol = serializers.ChoiceField(choices=SecurityGroupRule.Protocol.values, default="tcp")
    port_min = serializers.IntegerField(required=False, allow_null=True, min_value=-(2**31), max_value=2**31 - 1)
    port_max = serializers.IntegerField(required=False, allow_null=True, min_value=-(2**31), max_value=2**31 - 1)
    remote_cidr = serializers.CharField(max_length=43, required=False, default="", allow_blank=True)
    remote_group = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**31 - 1)
    description = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)


class SecurityGroupSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    rules = RuleSerializer(many=True, read_only=True)

    class Meta:
        model = SecurityGroup
        fields = ["id", "name", "tenant", "description", "is_default", "revision", "rules", "created_at"]


class SecurityGroupCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    tenant = serializers.SlugField(required=False, help_text="tenant slug; default: the caller's tenant")
    description = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)


class PublicPoolSerializer(serializers.ModelSerializer):
    allocated = serializers.IntegerField(read_only=True)

    class Meta:
        model = PublicPool
        fields = ["id", "name", "site", "cidr", "allocated", "created_at"]
        read_only_fields = ["id", "allocated", "created_at"]


class ElasticIPSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    pool = serializers.SlugRelatedField(slug_field="name", read_only=True)
    address_ip = serializers.CharField(source="address.ip", read_only=True, default="")
    desktop_id = serializers.IntegerField(source="address.desktop_id", read_only=True, default=None, allow_null=True)

    class Meta:
        model = ElasticIP
        fields = [
            "id",
            "ip",
            "pool",
            "tenant",
            "address",
            "address_ip",
            "desktop_id",
            "applied",
            "applied_to",
            "apply_note",
        ]


class ElasticIPCreateSerializer(serializers.Serializer):
    pool = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, help_text="a public pool id; default: the first pool"
    )
    tenant = serializers.SlugField(required=False)


class AssociateSerializer(serializers.Serializer):
    address = serializers.IntegerField(
        allow_null=True, min_value=1, max_value=2**31 - 1, help_text="an address (NIC) id; null unbinds"
    )


class PortForwardSerializer(serializers.ModelSerializer):
    public_ip = serializers.CharField(source="elastic_ip.ip", read_only=True)
    private_ip = serializers.CharField(source="address.ip", read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = PortForward
        fields = [
            "id",
            "elastic_ip",
            "public_ip",
            "protocol",
            "public_port",
            "address",
            "private_ip",
            "private_port",
            "tenant",
            "applied",
            "applied_to",
            "apply_note",
        ]


class PortForwardCreateSerializer(serializers.Serializer):
    elastic_ip = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    address = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    protocol = serializers.ChoiceField(choices=PortForward.Protocol.values, default="tcp")
    public_port = serializers.IntegerField(min_value=1, max_value=65535)
    private_port = serializers.IntegerField(min_value=1, max_value=65535)


class SegmentSerializer(serializers.ModelSerializer):
    tenants = serializers.SerializerMethodField(help_text="tenant slugs it is assigned to (platform admins only)")

    class Meta:
        model = Segment
        fields = ["id", "name", "site", "kind", "bridge", "portgroup", "first", "last", "description", "tenants"]
        read_only_fields = ["id", "tenants"]

    def get_tenants(self, obj) -> list[str]:
        request = self.context.get("request")
        if request is None or not selectors.is_platform_reader(request.user):
            return []
        return sorted(a.tenant.slug for a in obj.assignments.all())


class SegmentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=Segment.Kind.values)
    site = serializers.CharField(max_length=50, default="main")
    bridge = serializers.CharField(max_length=15, required=False, default="", allow_blank=True)
    portgroup = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    first = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1)
    last = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**31 - 1)
    description = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)


class AssignSerializer(serializers.Serializer):
    tenant = serializers.SlugField(max_length=50, allow_null=True, help_text="tenant slug; null takes a pool back")


class AddressPoolSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)  # null: a platform pool
    subnet_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = AddressPool
        fields = ["id", "name", "cidr", "min_prefixlen", "tenant", "description", "subnet_count", "created_at"]


class AddressPoolCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    cidr = serializers.CharField(max_length=43)
    min_prefixlen = serializers.IntegerField(
        default=24, min_value=0, max_value=32, help_text="the largest subnet of the pool: 24 = at most a /24"
    )
    tenant = serializers.SlugField(max_length=50, required=False, allow_null=True)
    description = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)

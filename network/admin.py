"""Read-mostly admin of network: changes go through services (pages and API), so the admin only looks."""

from django.contrib import admin

from common.admin import ReadOnlyAdmin, ReadOnlyInline
from network.models import (
    Address,
    AddressPool,
    ElasticIP,
    Network,
    NetworkDeployment,
    PortForward,
    PublicPool,
    SecurityGroup,
    SecurityGroupRule,
    Segment,
    SegmentRange,
    Subnet,
)


@admin.register(Network)
class NetworkAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "kind", "segment_type", "segment_id", "site"]
    list_filter = ["kind", "segment_type", "site"]
    search_fields = ["name"]


@admin.register(Subnet)
class SubnetAdmin(ReadOnlyAdmin):
    list_display = ["cidr", "network", "gateway", "dhcp_start", "dhcp_end"]


@admin.register(Address)
class AddressAdmin(ReadOnlyAdmin):
    list_display = ["ip", "mac", "subnet", "kind", "state", "desktop_id", "pushed_to"]
    list_filter = ["kind", "state"]
    search_fields = ["ip", "mac", "hostname"]


class RuleInline(ReadOnlyInline):
    model = SecurityGroupRule
    fk_name = "group"


@admin.register(SecurityGroup)
class SecurityGroupAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "is_default", "revision"]
    inlines = [RuleInline]


@admin.register(SegmentRange)
class SegmentRangeAdmin(admin.ModelAdmin):
    """Ranges are plain platform settings, edited here by the system admin."""

    list_display = ["site", "kind", "first", "last"]


@admin.register(Segment)
class SegmentAdmin(ReadOnlyAdmin):
    """Segments change through the services (page 物理网段与地址池, API): assignments are audited."""

    list_display = ["name", "site", "kind", "bridge", "portgroup", "first", "last"]
    list_filter = ["kind", "site"]


@admin.register(AddressPool)
class AddressPoolAdmin(ReadOnlyAdmin):
    list_display = ["name", "cidr", "min_prefixlen", "tenant"]


admin.site.register([NetworkDeployment, PublicPool, ElasticIP, PortForward], ReadOnlyAdmin)

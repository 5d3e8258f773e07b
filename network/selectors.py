"""Reads of the network app, scoped to the acting user; each fails closed (nothing when unsure)."""

import ipaddress

from django.db.models import Count, Q, QuerySet

from network.models import (
    DHCP_STATUS_LABELS,
    Address,
    AddressPool,
    ElasticIP,
    Network,
    PortForward,
    PublicPool,
    SecurityGroup,
    Segment,
    SegmentAssignment,
    Subnet,
    dhcp_status_of,
)
from tenants.models import Tenant
from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import platform_role_of, tenants_with_role

PLATFORM_READERS = (PlatformRole.SYSTEM_ADMIN, PlatformRole.AUDIT_ADMIN)
# Tenant roles that see every NIC of their tenants, not only their own desktops'.
TENANT_WIDE = (TenantRole.TENANT_ADMIN, TenantRole.AUDITOR, TenantRole.FINANCE, TenantRole.TEACHER)


def _authenticated(user) -> bool:
    return bool(getattr(user, "is_authenticated", False))


def _platform_reader(user) -> bool:
    return platform_role_of(user) in PLATFORM_READERS


def is_platform_reader(user) -> bool:
    """The system and audit admins: they see every platform object and whom it is assigned to."""
    return _authenticated(user) and _platform_reader(user)


def _member_tenants(user) -> QuerySet[Tenant]:
    return tenants_with_role(user, *TenantRole.values)


def network_list_for(user, *, search: str = "", tenant: str = "") -> QuerySet[Network]:
    """Networks the user may see: their tenants' and the shared ones; every network for platform readers."""
    if not _authenticated(user):
        return Network.objects.none()
    queryset = Network.objects.select_related("tenant").prefetch_related("subnets")
    if not _platform_reader(user):
        tenants = _member_tenants(user)
        if platform_role_of(user) == PlatformRole.SECURITY_ADMIN or not tenants.exists():
            return Network.objects.none()
        queryset = queryset.filter(Q(tenant__in=tenants) | _shared_for(tenants)).distinct()
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(subnets__cidr__startswith=search)).distinct()
    if tenant:
        queryset = queryset.filter(tenant__slug=tenant)
    return queryset


def network_get_for(user, *, pk) -> Network:
    return network_list_for(user).get(pk=pk)


def subnet_list_for(user, *, network_id=None) -> QuerySet[Subnet]:
    networks = network_list_for(user)
    queryset = (
        Subnet.objects.filter(network__in=networks.values("pk"))
        .select_related("network__tenant")
        .annotate(used=Count("addresses"))
    )
    if network_id is not None:
        queryset = queryset.filter(network_id=network_id)
    return queryset


def subnet_usage(subnet: Subnet) -> dict:
    """Used and free addresses of the subnet's pool (``used`` annotated by subnet_list_for when present)."""
    used = getattr(subnet, "used", None)
    if used is None:
        used = subnet.addresses.count()
    gateway = ipaddress.IPv4Address(subnet.gateway)
    start, end = ipaddress.IPv4Address(subnet.dhcp_start), ipaddress.IPv4Address(subnet.dhcp_end)
    size = subnet.pool_size - (1 if start <= gateway <= end else 0)
    return {"size": size, "used": used, "free": max(0, size - used)}


def address_list_for(user, *, desktop_id=None, subnet_id=None, network_id=None) -> QuerySet[Address]:
    """NICs and reserved addresses: all for platform readers, tenant-wide roles their tenants', others their own."""
    if not _authenticated(user):
        return Address.objects.none()
    queryset = Address.objects.select_related("subnet__network", "security_group", "tenant", "owner")
    if not _platform_reader(user):
        if platform_role_of(user) == PlatformRole.SECURITY_ADMIN:
            return Address.objects.none()
        wide = tenants_with_role(user, *TENANT_WIDE)
        queryset = queryset.filter(Q(tenant__in=wide) | Q(owner=user, kind=Address.Kind.NIC))
    if desktop_id is not None:
        queryset = queryset.filter(desktop_id=desktop_id)
    if subnet_id is not None:
        queryset = queryset.filter(subnet_id=subnet_id)
    if network_id is not None:
        queryset = queryset.filter(subnet__network_id=network_id)
    return queryset


def security_group_list_for(user, *, tenant: str = "") -> QuerySet[SecurityGroup]:
    if not _authenticated(user):
        return SecurityGroup.objects.none()
    queryset = SecurityGroup.objects.select_related("tenant").prefetch_related("rules__remote_group")
    if not _platform_reader(user):
        if platform_role_of(user) == PlatformRole.SECURITY_ADMIN:
            return SecurityGroup.objects.none()
        queryset = queryset.filter(tenant__in=_member_tenants(user))
    if tenant:
        queryset = queryset.filter(tenant__slug=tenant)
    return queryset


def elastic_ip_list_for(user) -> QuerySet[ElasticIP]:
    if not _authenticated(user):
        return ElasticIP.objects.none()
    queryset = ElasticIP.objects.select_related("pool", "tenant", "address")
    if not _platform_reader(user):
        queryset = queryset.filter(tenant__in=tenants_with_role(user, *TENANT_WIDE))
    return queryset


def port_forward_list_for(user) -> QuerySet[PortForward]:
    if not _authenticated(user):
        return PortForward.objects.none()
    queryset = PortForward.objects.select_related("elastic_ip", "address", "tenant")
    if not _platform_reader(user):
        queryset = queryset.filter(tenant__in=tenants_with_role(user, *TENANT_WIDE))
    return queryset


def public_pool_list_for(user) -> QuerySet[PublicPool]:
    """Public pools are platform inventory: the system and audit admins see them (tenant admins
    allocate elastic IPs from the default pool without seeing the others)."""
    if not _authenticated(user) or not _platform_reader(user):
        return PublicPool.objects.none()
    return PublicPool.objects.annotate(allocated=Count("ips"))


def network_has_vcenter_nics(network: Network) -> bool:
    """Whether desktops on vCenter (no DHCP service there) hold NICs of this network the caller already sees."""
    return Address.objects.filter(
        subnet__network=network, kind=Address.Kind.NIC, state=Address.State.ALLOCATED, dhcp=Address.Dhcp.VCENTER
    ).exists()


def nics_for_desktops(desktop_ids) -> dict[int, list[dict]]:
    """The NICs of these desktops, one query for all: {desktop_id: [{"mac", "ip", "network", ...}]}.

    Not scoped by user: the caller (compute's desktop serializer) passes the ids of desktops
    it has already scoped. Released (held) addresses are not NICs any more.
    """
    ids = [int(i) for i in desktop_ids if i is not None]
    result: dict[int, list[dict]] = {i: [] for i in ids}
    if not ids:
        return result
    # Columns, not instances: a page of desktops reads its NICs with their network and group names.
    rows = (
        Address.objects.filter(desktop_id__in=ids, state=Address.State.ALLOCATED, kind=Address.Kind.NIC)
        .order_by("desktop_id", "nic_index")
        .values_list(
            "desktop_id",
            "mac",
            "ip",
            "subnet__network__name",
            "subnet__network_id",
            "subnet__network__kind",
            "subnet__cidr",
            "subnet__gateway",
            "security_group__name",
            "pushed_to",
            "dhcp",
        )
    )
    for desktop_id, mac, ip, network, network_id, kind, cidr, gateway, group, pushed_to, dhcp in rows:
        status = dhcp_status_of(network_kind=kind, dhcp=dhcp, pushed_to=pushed_to)
        result[desktop_id].append(
            {
                "mac": mac,
                "ip": ip,
                "network": network,
                "network_id": network_id,
                "cidr": cidr,
                "gateway": gateway,
                "security_group": group or "",
                "pushed_to": pushed_to,
                "dhcp_status": status,
                "dhcp_status_display": str(DHCP_STATUS_LABELS[status]),
            }
        )
    return result


def _shared_for(tenants) -> Q:
    """Shared networks these tenants may use: the platform-wide ones, and provider networks (shared
    networks on a platform segment) whose segment is assigned to one of them or a tenant above."""
    paths: set[str] = set()
    for tenant in tenants:
        paths.update(tenant.ancestor_paths())
    everyone = Q(tenant__isnull=True, platform_segment__isnull=True)
    assigned = SegmentAssignment.objects.filter(tenant__path__in=sorted(paths)).values("segment_id")
    return everyone | Q(tenant__isnull=True, platform_segment__in=assigned)


def shared_network_usable_by(network: Network, tenant) -> bool:
    """Whether the tenant may put a desktop on this shared network (a provider network: if assigned)."""
    return Network.objects.filter(_shared_for([tenant]), pk=network.pk).exists()


def default_network_for(tenant) -> Network | None:
    """The network a new desktop of the tenant joins: its first network with a subnet, else a shared
    one it may use."""
    own = Network.objects.filter(tenant=tenant, subnets__isnull=False).order_by("id").first()
    if own is not None:
        return own
    shared = Network.objects.filter(_shared_for([tenant]), subnets__isnull=False)
    return shared.order_by("id").first()


def other_tenants_cidrs(tenant) -> list[str]:
    """CIDRs of other tenants' subnets: what a tenant's default group keeps out.

    Never one that overlaps the tenant's own subnets or address pools: what another tenant typed
    cannot turn this tenant's own ranges (or the campus ACCEPT rules in front of them) into DROPs.
    Tenant subnets come from address pools the platform assigns, which never overlap.
    """
    own = [ipaddress.IPv4Network(c) for c in Subnet.objects.filter(tenant=tenant).values_list("cidr", flat=True)]
    own += [pool.ip_network for pool in address_pools_of_tenant(tenant)]
    others = Subnet.objects.filter(tenant__isnull=False).exclude(tenant=tenant).values_list("cidr", flat=True)
    result = []
    for cidr in sorted(set(others)):
        if not any(ipaddress.IPv4Network(cidr).overlaps(mine) for mine in own):
            result.append(cidr)
    return result


# --- platform segments and address pools --------------------------------------------------------


def _lineage(tenant) -> QuerySet[Tenant]:
    """The tenant and every tenant above it: what was assigned to any of them is the tenant's to use."""
    return Tenant.objects.filter(path__in=tenant.ancestor_paths())


def segments_of_tenant(tenant, *, kind: str | None = None, site: str | None = None) -> QuerySet[Segment]:
    """Segments assigned to the tenant or to a tenant above it (not scoped to a user: services check)."""
    queryset = Segment.objects.filter(assignments__tenant__in=_lineage(tenant)).distinct()
    if kind is not None:
        queryset = queryset.filter(kind=kind)
    if site is not None:
        queryset = queryset.filter(site=site)
    return queryset.order_by("site", "kind", "name")


def address_pools_of_tenant(tenant) -> QuerySet[AddressPool]:
    """Address pools assigned to the tenant or to a tenant above it."""
    return AddressPool.objects.filter(tenant__in=_lineage(tenant)).order_by("name")


def _admin_lineages(user) -> Q:
    """Tenants whose admins may pick from what was assigned to them or above them: one Q on ``tenant``."""
    paths: set[str] = set()
    for tenant in tenants_with_role(user, TenantRole.TENANT_ADMIN):
        paths.update(tenant.ancestor_paths())
    return Q(tenant__path__in=sorted(paths))


def segment_list_for(user) -> QuerySet[Segment]:
    """All segments for the platform readers; a tenant admin the ones its tenants may use; others none."""
    if not _authenticated(user):
        return Segment.objects.none()
    queryset = Segment.objects.prefetch_related("assignments__tenant")
    if _platform_reader(user):
        return queryset
    if platform_role_of(user) is not None:
        return Segment.objects.none()
    usable = SegmentAssignment.objects.filter(_admin_lineages(user)).values("segment_id")
    return queryset.filter(pk__in=usable)


def address_pool_list_for(user) -> QuerySet[AddressPool]:
    """All pools for the platform readers; a tenant admin the ones its tenants may use; others none."""
    if not _authenticated(user):
        return AddressPool.objects.none()
    queryset = AddressPool.objects.select_related("tenant").annotate(subnet_count=Count("subnets"))
    if _platform_reader(user):
        return queryset
    if platform_role_of(user) is not None:
        return AddressPool.objects.none()
    return queryset.filter(_admin_lineages(user))

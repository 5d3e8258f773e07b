"""Reads of the network app, scoped to the acting user; each fails closed (nothing when unsure)."""

import ipaddress

from django.db.models import Count, Q, QuerySet

from network.models import Address, ElasticIP, Network, PortForward, PublicPool, SecurityGroup, Subnet
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
        queryset = queryset.filter(Q(tenant__in=tenants) | Q(tenant__isnull=True))
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


def elastic_ips_bound_to_desktop(desktop_id: int) -> int:
    """How many elastic IPs are bound to the desktop's NICs (not scoped: billing's metering reads it)."""
    return ElasticIP.objects.filter(
        address__desktop_id=desktop_id, address__state=Address.State.ALLOCATED, address__kind=Address.Kind.NIC
    ).count()


def elastic_ips_bound_to_desktops(desktop_ids) -> dict[int, int]:
    """elastic_ips_bound_to_desktop for many desktops in one query: {desktop_id: count}, zeros left out."""
    from django.db.models import Count

    rows = (
        ElasticIP.objects.filter(
            address__desktop_id__in=list(desktop_ids),
            address__state=Address.State.ALLOCATED,
            address__kind=Address.Kind.NIC,
        )
        .values("address__desktop_id")
        .annotate(n=Count("pk"))
    )
    return {row["address__desktop_id"]: row["n"] for row in rows}


def nics_for_desktops(desktop_ids) -> dict[int, list[dict]]:
    """The NICs of these desktops, one query for all: {desktop_id: [{"mac", "ip", "network", ...}]}.

    Not scoped by user: the caller (compute's desktop serializer) passes the ids of desktops
    it has already scoped. Released (held) addresses are not NICs any more.
    """
    ids = [int(i) for i in desktop_ids if i is not None]
    result: dict[int, list[dict]] = {i: [] for i in ids}
    if not ids:
        return result
    rows = (
        Address.objects.filter(desktop_id__in=ids, state=Address.State.ALLOCATED, kind=Address.Kind.NIC)
        .select_related("subnet__network", "security_group")
        .order_by("desktop_id", "nic_index")
    )
    for address in rows:
        result[address.desktop_id].append(
            {
                "mac": address.mac,
                "ip": address.ip,
                "network": address.subnet.network.name,
                "network_id": address.subnet.network_id,
                "cidr": address.subnet.cidr,
                "gateway": address.subnet.gateway,
                "security_group": address.security_group.name if address.security_group_id else "",
                "pushed_to": address.pushed_to,
                "dhcp_status": address.dhcp_status,
                "dhcp_status_display": address.dhcp_status_display,
            }
        )
    return result


def default_network_for(tenant) -> Network | None:
    """The network a new desktop of the tenant joins: its first network with a subnet, else a shared one."""
    own = Network.objects.filter(tenant=tenant, subnets__isnull=False).order_by("id").first()
    if own is not None:
        return own
    return Network.objects.filter(tenant__isnull=True, subnets__isnull=False).order_by("id").first()


def other_tenants_cidrs(tenant) -> list[str]:
    """CIDRs of every other tenant's subnets: what a tenant's default group keeps out."""
    return list(
        Subnet.objects.filter(tenant__isnull=False).exclude(tenant=tenant).values_list("cidr", flat=True).distinct()
    )

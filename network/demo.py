"""Demo data of network (idempotent): a VLAN range, the platform's address pools and VLAN segments
assigned to the `cs` and `me` tenants, the `cs` tenant's lab network, a default security group per
tenant, a public pool for elastic IPs.

The desktops' bindings are compute's part (``compute.networking.seed_bindings``, run after
the classroom seeder): network does not know desktops.
"""

import ipaddress

from django.conf import settings
from django.db import transaction

from network import services
from network.models import AddressPool, Network, PublicPool, SecurityGroup, Segment, SegmentRange
from tenants.models import Tenant

CS_NETWORK = "cs-lab"
# The demo lab network; a machine whose hypervisor already routes this subnet sets DEMO_NETWORK_CIDR.
CS_CIDR = getattr(settings, "DEMO_NETWORK_CIDR", "10.20.1.0/24")


# Address pools and VLAN ranges the platform gives the demo tenants: {slug: (pool, VLAN range)}.
TENANT_VLANS = {"cs": (200, 299), "me": (300, 399)}


def _tenant_pools() -> dict[str, str]:
    """cs: the /16 around the lab network; me: 10.21.0.0/16, or the first /16 of 10/8 clear of cs's."""
    cs = ipaddress.IPv4Network(CS_CIDR)
    cs_pool = cs if cs.prefixlen <= 16 else cs.supernet(new_prefix=16)
    candidates = [ipaddress.IPv4Network("10.21.0.0/16"), *ipaddress.IPv4Network("10.0.0.0/8").subnets(new_prefix=16)]
    me_pool = next(net for net in candidates if not net.overlaps(cs_pool))
    return {"cs": str(cs_pool), "me": str(me_pool)}


def _seed_tenant_platform(tenant: Tenant, cidr: str) -> None:
    """The tenant's address pool (subnets up to /22) and its VLAN range, created and assigned once."""
    pool = AddressPool.objects.filter(name=f"{tenant.slug}-pool").first()
    if pool is None and not any(p.ip_network.overlaps(ipaddress.IPv4Network(cidr)) for p in AddressPool.objects.all()):
        pool = services.address_pool_create(actor=None, name=f"{tenant.slug}-pool", cidr=cidr, min_prefixlen=22)
    if pool is not None and pool.tenant_id is None:
        services.address_pool_assign(actor=None, pool=pool, tenant=tenant)
    first, last = TENANT_VLANS[tenant.slug]
    segment = Segment.objects.filter(name=f"{tenant.slug}-vlans").first()
    if segment is None:
        segment = services.segment_create(
            actor=None, name=f"{tenant.slug}-vlans", kind=Segment.Kind.VLAN, first=first, last=last
        )
    if not segment.assignments.filter(tenant=tenant).exists():
        services.segment_assign(actor=None, segment=segment, tenant=tenant)


def seed() -> dict:
    created = {"networks": 0, "security_groups": 0}
    pools = _tenant_pools()
    for tenant in Tenant.objects.filter(slug__in=list(TENANT_VLANS)):
        _seed_tenant_platform(tenant, pools[tenant.slug])
    with transaction.atomic():
        SegmentRange.objects.get_or_create(site="main", kind="vlan", defaults={"first": 100, "last": 3999})
        PublicPool.objects.get_or_create(name="campus-public", defaults={"cidr": "198.51.100.0/26", "site": "main"})
    cs = Tenant.objects.filter(slug="cs").first()
    if cs is not None and not Network.objects.filter(tenant=cs, name=CS_NETWORK).exists():
        services.network_create(
            actor=None,
            tenant=cs,
            name=CS_NETWORK,
            kind=Network.Kind.ROUTER,
            segment_type="vlan",
            cidr=CS_CIDR,
            dns_servers="223.5.5.5",
            description="计算机学院实验室网络（CS101 桌面）",
        )
        created["networks"] += 1
    for tenant in Tenant.objects.filter(is_active=True).exclude(kind=Tenant.Kind.UNIVERSITY):
        if not SecurityGroup.objects.filter(tenant=tenant, is_default=True).exists():
            services.security_group_default_ensure(tenant=tenant)
            created["security_groups"] += 1
    return created

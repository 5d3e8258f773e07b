"""Demo data of network (idempotent): a VLAN range, the `cs` tenant's lab network, a default
security group per tenant, a public pool for elastic IPs.

The desktops' bindings are compute's part (``compute.networking.seed_bindings``, run after
the classroom seeder): network does not know desktops.
"""

from django.conf import settings
from django.db import transaction

from network import services
from network.models import Network, PublicPool, SecurityGroup, SegmentRange
from tenants.models import Tenant

CS_NETWORK = "cs-lab"
# The demo lab network; a machine whose hypervisor already routes this subnet sets DEMO_NETWORK_CIDR.
CS_CIDR = getattr(settings, "DEMO_NETWORK_CIDR", "10.20.1.0/24")


def seed() -> dict:
    created = {"networks": 0, "security_groups": 0}
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

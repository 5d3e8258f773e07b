"""Objects of tenant `cs` for tests/api/test_isolation.py: a user of `me` must get a 404 on each."""

import itertools

from network import services
from network.models import Address, ElasticIP, PortForward, PublicPool, SecurityGroupRule

_counter = itertools.count(1)


def _network(scenario):
    return services.network_create(
        actor=scenario.sysadmin, tenant=scenario.tenant_a, name=f"iso-{next(_counter)}", cidr="10.231.40.0/24"
    )


def _network_id(scenario):
    return {"id": _network(scenario).pk}


def _subnet_id(scenario):
    return {"id": _network(scenario).subnets.get().pk}


def _nic(scenario):
    network = _network(scenario)
    return services.address_allocate(tenant=scenario.tenant_a, desktop_id=999, network=network, owner=scenario.student)


def _reserved_id(scenario):
    subnet = _network(scenario).subnets.get()
    return {"id": Address.objects.create(subnet=subnet, tenant=scenario.tenant_a, ip="10.231.40.9", kind="reserved").pk}


def _group(scenario):
    return services.security_group_default_ensure(tenant=scenario.tenant_a)


def _rule_ids(scenario):
    group = _group(scenario)
    return {"id": group.pk, "rule_id": SecurityGroupRule.objects.filter(group=group).first().pk}


def _pool(scenario):
    pool, _created = PublicPool.objects.get_or_create(name="iso-pool", defaults={"cidr": "198.51.100.0/28"})
    return pool


def _eip(scenario):
    return ElasticIP.objects.create(pool=_pool(scenario), tenant=scenario.tenant_a, ip=f"198.51.100.{next(_counter)}")


def _forward_id(scenario):
    eip = _eip(scenario)
    forward = PortForward.objects.create(
        elastic_ip=eip, tenant=scenario.tenant_a, public_port=2222, address=_nic(scenario), private_port=22
    )
    return {"id": forward.pk}


def _segment(scenario):
    """A platform segment assigned to tenant `cs` only: `me`'s users do not see it."""
    segment = services.segment_create(
        actor=scenario.sysadmin, name=f"iso-seg-{next(_counter)}", kind="bridge", bridge=f"briso{next(_counter)}"
    )
    services.segment_assign(actor=scenario.sysadmin, segment=segment, tenant=scenario.tenant_a)
    return {"id": segment.pk}


def _address_pool(scenario):
    pool = services.address_pool_create(
        actor=scenario.sysadmin,
        name=f"iso-pool-{next(_counter)}",
        cidr=f"10.{200 + next(_counter) % 50}.0.0/16",
        tenant=scenario.tenant_a,
    )
    return {"id": pool.pk}


MAKERS = {
    "/api/v1/segments/{id}/": _segment,
    "/api/v1/segments/{id}/assign/": _segment,
    "/api/v1/segments/{id}/unassign/": _segment,
    "/api/v1/address-pools/{id}/": _address_pool,
    "/api/v1/address-pools/{id}/assign/": _address_pool,
    "/api/v1/networks/{id}/": _network_id,
    "/api/v1/networks/{id}/subnets/": _network_id,
    "/api/v1/subnets/{id}/": _subnet_id,
    "/api/v1/subnets/{id}/reserve/": _subnet_id,
    "/api/v1/addresses/{id}/": _reserved_id,
    "/api/v1/addresses/{id}/security-group/": lambda scenario: {"id": _nic(scenario).pk},
    "/api/v1/security-groups/{id}/": lambda scenario: {"id": _group(scenario).pk},
    "/api/v1/security-groups/{id}/rules/": lambda scenario: {"id": _group(scenario).pk},
    "/api/v1/security-groups/{id}/rules/{rule_id}/": _rule_ids,
    "/api/v1/public-pools/{id}/": lambda scenario: {"id": _pool(scenario).pk},
    "/api/v1/elastic-ips/{id}/": lambda scenario: {"id": _eip(scenario).pk},
    "/api/v1/elastic-ips/{id}/associate/": lambda scenario: {"id": _eip(scenario).pk},
    "/api/v1/port-forwards/{id}/": _forward_id,
}

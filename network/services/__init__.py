"""Writes of the network app: networks and subnets, IPAM (IP/MAC), security groups, elastic IPs, forwards.

Every service is keyword-only, runs in one transaction and records its audit event
there. Races are settled by row locks taken in one helper each (``Subnet.objects.locked``
for IPAM, ``_scope_lock`` for CIDR overlaps, ``SegmentRange.objects.locked`` for
VLAN/VXLAN ids) with unique constraints behind them. Pushing anything to a hypervisor
is compute's job (``compute/networking.py``): services here tell it through
``network.hooks`` once their transaction commits.

The services live in ``networks``, ``ipam``, ``security_groups`` and ``forwarding``; the
public ones are re-exported here, so callers import ``network.services`` alone.
"""

from network.services.forwarding import (
    elastic_ip_allocate,
    elastic_ip_applied,
    elastic_ip_associate,
    elastic_ip_release,
    port_forward_applied,
    port_forward_create,
    port_forward_delete,
    public_pool_create,
)
from network.services.ipam import (
    address_allocate,
    address_pushed,
    address_reserve,
    address_unreserve,
    addresses_dhcp_set,
    addresses_purge_expired,
    addresses_release,
    dhcp_address_reserve,
    dhcp_addresses_release,
    hold_seconds,
)
from network.services.networks import (
    deployment_forget,
    deployment_record,
    network_create,
    network_delete,
    network_vni_ensure,
    segment_range_set,
    subnet_create,
)
from network.services.security_groups import (
    DEFAULT_GROUP_NAME,
    campus_cidrs,
    nic_security_group_set,
    rule_add,
    rule_delete,
    security_group_create,
    security_group_default_ensure,
    security_group_delete,
)
from network.services.segments import (
    address_pool_assign,
    address_pool_create,
    address_pool_delete,
    segment_assign,
    segment_create,
    segment_delete,
)

__all__ = [
    "DEFAULT_GROUP_NAME",
    "address_pool_assign",
    "address_pool_create",
    "address_pool_delete",
    "segment_assign",
    "segment_create",
    "segment_delete",
    "address_allocate",
    "address_pushed",
    "address_reserve",
    "address_unreserve",
    "addresses_dhcp_set",
    "addresses_purge_expired",
    "addresses_release",
    "campus_cidrs",
    "deployment_forget",
    "deployment_record",
    "dhcp_address_reserve",
    "dhcp_addresses_release",
    "network_vni_ensure",
    "elastic_ip_allocate",
    "elastic_ip_applied",
    "elastic_ip_associate",
    "elastic_ip_release",
    "hold_seconds",
    "network_create",
    "network_delete",
    "nic_security_group_set",
    "port_forward_applied",
    "port_forward_create",
    "port_forward_delete",
    "public_pool_create",
    "rule_add",
    "rule_delete",
    "security_group_create",
    "security_group_default_ensure",
    "security_group_delete",
    "segment_range_set",
    "subnet_create",
]

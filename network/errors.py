"""The error codes of the network app: what API clients read in {"code", ...}, so values never change."""

from enum import StrEnum


class NetworkError(StrEnum):
    # Networks, subnets and VLAN/VXLAN segments
    NETWORK_MANAGE_FORBIDDEN = "network_manage_forbidden"
    NETWORK_NAME_INVALID = "network_name_invalid"
    NETWORK_NAME_TAKEN = "network_name_taken"
    NETWORK_KIND_INVALID = "network_kind_invalid"
    NETWORK_NOT_FOUND = "network_not_found"
    NETWORK_REQUIRED = "network_required"
    NETWORK_IN_USE = "network_in_use"
    NETWORK_HAS_NO_SUBNET = "network_has_no_subnet"
    FLAT_NEEDS_BRIDGE = "flat_needs_bridge"
    BRIDGE_INVALID = "bridge_invalid"
    CIDR_INVALID = "cidr_invalid"
    CIDR_SIZE = "cidr_size"
    CIDR_OVERLAP = "cidr_overlap"
    DHCP_RANGE_INVALID = "dhcp_range_invalid"
    SEGMENT_KIND_INVALID = "segment_kind_invalid"
    SEGMENT_UNEXPECTED = "segment_unexpected"
    SEGMENT_OUT_OF_RANGE = "segment_out_of_range"
    SEGMENT_IN_USE = "segment_in_use"
    SEGMENT_EXHAUSTED = "segment_exhausted"
    SEGMENT_RANGE_INVALID = "segment_range_invalid"

    # IPAM
    IP_INVALID = "ip_invalid"
    IP_OUTSIDE_SUBNET = "ip_outside_subnet"
    IP_IN_USE = "ip_in_use"
    SUBNET_FULL = "subnet_full"
    MAC_INVALID = "mac_invalid"
    MAC_IN_USE = "mac_in_use"
    MAC_EXHAUSTED = "mac_exhausted"
    ADDRESS_NOT_FOUND = "address_not_found"
    ADDRESS_NOT_RESERVED = "address_not_reserved"

    # Security groups
    SECURITY_GROUP_MANAGE_FORBIDDEN = "security_group_manage_forbidden"
    SECURITY_GROUP_NAME_INVALID = "security_group_name_invalid"
    SECURITY_GROUP_NAME_TAKEN = "security_group_name_taken"
    SECURITY_GROUP_NOT_FOUND = "security_group_not_found"
    SECURITY_GROUP_DEFAULT = "security_group_default"
    SECURITY_GROUP_IN_USE = "security_group_in_use"
    SECURITY_GROUP_REFERENCED = "security_group_referenced"
    RULE_DIRECTION_INVALID = "rule_direction_invalid"
    RULE_PROTOCOL_INVALID = "rule_protocol_invalid"
    RULE_PORT_RANGE_INVALID = "rule_port_range_invalid"
    RULE_REMOTE_INVALID = "rule_remote_invalid"

    # Public pools, elastic IPs and port forwards
    POOL_NAME_TAKEN = "pool_name_taken"
    POOL_EXHAUSTED = "pool_exhausted"
    EIP_IN_USE = "eip_in_use"
    PORT_INVALID = "port_invalid"
    PORT_FORWARD_TAKEN = "port_forward_taken"

"""What the network services share: the network admin's permission check and parsing of addresses."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from common.errors import Forbidden, InvalidInput
from network import rules
from network.errors import NetworkError

if TYPE_CHECKING:
    from tenants.models import Tenant, User


def require_network_admin(actor: User | None, tenant: Tenant | None) -> None:
    if not rules.can_manage_networks(actor, tenant):
        raise Forbidden(_("只有租户管理员或系统管理员可以管理网络。"), code=NetworkError.NETWORK_MANAGE_FORBIDDEN)


def parse_network(cidr: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(cidr.strip(), strict=True)
    except ValueError as exc:
        raise InvalidInput(
            _("网段 %(cidr)s 无效：%(error)s") % {"cidr": cidr, "error": exc},
            code=NetworkError.CIDR_INVALID,
            detail={"cidr": cidr},
        ) from exc
    if net.prefixlen > 29 or net.prefixlen < 8:
        raise InvalidInput(_("网段掩码长度须在 /8 到 /29 之间。"), code=NetworkError.CIDR_SIZE, detail={"cidr": cidr})
    return net


def parse_ip(value: str, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError as exc:
        raise InvalidInput(
            _("%(field)s 不是有效的 IPv4 地址。") % {"field": field},
            code=NetworkError.IP_INVALID,
            detail={"field": field},
        ) from exc

"""IPAM: the addresses (IP and MAC) of desktops' NICs, and the ones an admin reserves."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, InvalidInput, NotFound
from network import selectors as network_selectors
from network.errors import NetworkError
from network.models import Address, ElasticIP, Network, SecurityGroup, Subnet
from network.services._shared import parse_ip, require_network_admin
from network.services.security_groups import security_group_default_ensure
from network.validation import checked, hostname_from

if TYPE_CHECKING:
    from tenants.models import Tenant, User


MAC_PREFIX = "52:54:00"
MAC_ATTEMPTS = 16


def hold_seconds() -> int:
    """How long a released address stays out of circulation (a guest may still use its lease)."""
    return int(getattr(settings, "NETWORK_IP_HOLD_SECONDS", 300))


def _random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def _purge_expired(subnet: Subnet) -> None:
    Address.objects.filter(subnet=subnet, state=Address.State.HELD, hold_until__lte=timezone.now()).delete()


def _reserved_ints(subnet: Subnet) -> set[int]:
    net = subnet.ip_network
    return {int(net.network_address), int(net.broadcast_address), int(ipaddress.IPv4Address(subnet.gateway))}


def _pick_free(subnet: Subnet) -> int:
    used = set(Address.objects.filter(subnet=subnet).values_list("ip_int", flat=True)) | _reserved_ints(subnet)
    start, end = int(ipaddress.IPv4Address(subnet.dhcp_start)), int(ipaddress.IPv4Address(subnet.dhcp_end))
    for candidate in range(start, end + 1):
        if candidate not in used:
            return candidate
    raise Conflict(
        _("子网 %(cidr)s 已没有空闲地址。") % {"cidr": subnet.cidr},
        code=NetworkError.SUBNET_FULL,
        detail={"subnet": subnet.pk, "cidr": subnet.cidr},
    )


def _create_with_unique_mac(**fields) -> Address:
    """Insert the address with a fresh MAC; a (very unlikely) MAC collision just draws again."""
    for _attempt in range(MAC_ATTEMPTS):
        try:
            with transaction.atomic():
                return Address.objects.create(mac=_random_mac(), **fields)
        except IntegrityError:
            if Address.objects.filter(subnet=fields["subnet"], ip=fields["ip"]).exists():
                raise
    raise Conflict(_("无法生成唯一的 MAC 地址。"), code=NetworkError.MAC_EXHAUSTED)


def _subnet_for(network: Network) -> Subnet:
    subnet = network.subnets.order_by("id").first()
    if subnet is None:
        raise InvalidInput(
            _("网络 %(name)s 还没有子网。") % {"name": network.name}, code=NetworkError.NETWORK_HAS_NO_SUBNET
        )
    return subnet


def address_allocate(
    *,
    tenant: Tenant,
    desktop_id: int,
    network: Network | None = None,
    subnet: Subnet | None = None,
    owner: User | None = None,
    nic_index: int = 0,
    hostname: str = "",
    security_group: SecurityGroup | None = None,
    ip: str = "",
) -> Address:
    """Give a desktop's NIC an IP of the subnet and a unique locally administered MAC.

    Race-safe: the subnet row is locked while the lowest free address is chosen, and the
    (subnet, ip) and mac unique constraints stand behind the lock. Called by compute when
    it creates a desktop; an existing allocation of the same NIC is returned unchanged.
    """
    if subnet is None:
        if network is None:
            raise InvalidInput(_("请指定网络或子网。"), code=NetworkError.NETWORK_REQUIRED)
        subnet = _subnet_for(network)
    network = subnet.network
    if network.tenant_id is not None and network.tenant_id != tenant.pk:
        raise NotFound(_("网络不存在。"), code=NetworkError.NETWORK_NOT_FOUND)
    if network.tenant_id is None and not network_selectors.shared_network_usable_by(network, tenant):
        # A provider network serves only the tenants its segment is assigned to.
        raise NotFound(_("网络不存在。"), code=NetworkError.NETWORK_NOT_FOUND)
    if security_group is not None and security_group.tenant_id != tenant.pk:
        raise NotFound(_("安全组不存在。"), code=NetworkError.SECURITY_GROUP_NOT_FOUND)
    with transaction.atomic():
        subnet = Subnet.objects.locked(subnet.pk)
        existing = Address.objects.filter(
            desktop_id=desktop_id, nic_index=nic_index, state=Address.State.ALLOCATED
        ).first()
        if existing is not None:
            return existing
        _purge_expired(subnet)
        if ip:
            wanted = parse_ip(ip, "ip")
            if wanted not in subnet.ip_network or int(wanted) in _reserved_ints(subnet):
                raise InvalidInput(_("地址 %(ip)s 不可分配。") % {"ip": ip}, code=NetworkError.IP_OUTSIDE_SUBNET)
            if Address.objects.filter(subnet=subnet, ip_int=int(wanted)).exists():
                raise Conflict(_("地址 %(ip)s 已被占用。") % {"ip": ip}, code=NetworkError.IP_IN_USE)
            ip_int = int(wanted)
        else:
            ip_int = _pick_free(subnet)
        group = security_group or security_group_default_ensure(tenant=tenant)
        address = _create_with_unique_mac(
            subnet=subnet,
            tenant=tenant,
            owner=owner,
            ip=str(ipaddress.IPv4Address(ip_int)),
            kind=Address.Kind.NIC,
            desktop_id=desktop_id,
            nic_index=nic_index,
            hostname=hostname_from(hostname),
            security_group=group,
        )
        event_record(
            action=Action.ADDRESS_ALLOCATED,
            target=address,
            tenant=tenant,
            detail={"op": "address_allocated", "ip": address.ip, "mac": address.mac, "desktop": desktop_id},
        )
    return address


DHCP_HOLDER_PREFIX = "dhcp-"


def dhcp_address_reserve(*, subnet_id: int, holder: str) -> Address:
    """The address a host's DHCP server listens on in a subnet spanning hosts: reserved once per
    (subnet, host), the highest free one of the DHCP range, never given to a NIC. Idempotent."""
    hostname = f"{DHCP_HOLDER_PREFIX}{holder}"[:63]
    found = Address.objects.filter(subnet_id=subnet_id, kind=Address.Kind.RESERVED, hostname=hostname).first()
    if found is not None:
        return found
    with transaction.atomic():
        subnet = Subnet.objects.locked(subnet_id)
        found = Address.objects.filter(subnet=subnet, kind=Address.Kind.RESERVED, hostname=hostname).first()
        if found is not None:
            return found
        _purge_expired(subnet)
        used = set(Address.objects.filter(subnet=subnet).values_list("ip_int", flat=True)) | _reserved_ints(subnet)
        start, end = int(ipaddress.IPv4Address(subnet.dhcp_start)), int(ipaddress.IPv4Address(subnet.dhcp_end))
        free = next((c for c in range(end, start - 1, -1) if c not in used), None)
        if free is None:
            raise Conflict(
                _("子网 %(cidr)s 已没有空闲地址。") % {"cidr": subnet.cidr},
                code=NetworkError.SUBNET_FULL,
                detail={"subnet": subnet.pk, "cidr": subnet.cidr},
            )
        address = Address.objects.create(
            subnet=subnet,
            tenant=subnet.tenant,
            ip=str(ipaddress.IPv4Address(free)),
            kind=Address.Kind.RESERVED,
            hostname=hostname,
        )
        event_record(
            action=Action.ADDRESS_RESERVED,
            target=address,
            tenant=subnet.tenant,
            detail={"op": "dhcp_address_reserved", "ip": address.ip, "host": holder},
        )
    return address


def dhcp_addresses_release(*, network_id: int, holder: str) -> int:
    """The host no longer holds the network: its DHCP server's address goes back to the subnet."""
    hostname = f"{DHCP_HOLDER_PREFIX}{holder}"[:63]
    deleted, _rows = Address.objects.filter(
        subnet__network_id=network_id, kind=Address.Kind.RESERVED, hostname=hostname
    ).delete()
    return deleted


def address_reserve(*, actor: User | None, subnet: Subnet, ip: str, mac: str = "", hostname: str = "") -> Address:
    """Keep an address out of the pool (a static host, a printer); with a MAC it gets a DHCP entry."""
    require_network_admin(actor, subnet.network.tenant)
    wanted = parse_ip(ip, "ip")
    hostname = checked("hostname", hostname, blank=True)
    mac = (mac or "").strip().lower()
    if mac and not _is_mac(mac):
        raise InvalidInput(_("MAC 地址格式无效。"), code=NetworkError.MAC_INVALID, detail={"field": "mac"})
    with transaction.atomic():
        subnet = Subnet.objects.locked(subnet.pk)
        _purge_expired(subnet)
        if wanted not in subnet.ip_network or int(wanted) in _reserved_ints(subnet):
            raise InvalidInput(_("地址 %(ip)s 不可保留。") % {"ip": ip}, code=NetworkError.IP_OUTSIDE_SUBNET)
        if Address.objects.filter(subnet=subnet, ip_int=int(wanted)).exists():
            raise Conflict(_("地址 %(ip)s 已被占用。") % {"ip": ip}, code=NetworkError.IP_IN_USE)
        if mac and Address.objects.filter(mac=mac).exists():
            raise Conflict(_("MAC 地址已被使用。"), code=NetworkError.MAC_IN_USE)
        address = Address.objects.create(
            subnet=subnet,
            tenant=subnet.network.tenant,
            ip=str(wanted),
            mac=mac or None,
            kind=Address.Kind.RESERVED,
            hostname=hostname,
        )
        event_record(
            action=Action.ADDRESS_RESERVED,
            actor=actor,
            target=address,
            tenant=subnet.network.tenant,
            detail={"op": "address_reserved", "ip": address.ip, "mac": mac},
        )
    return address


def address_unreserve(*, actor: User | None, address: Address) -> None:
    require_network_admin(actor, address.subnet.network.tenant)
    if address.kind != Address.Kind.RESERVED:
        raise Conflict(_("只能删除保留地址；桌面网卡随桌面释放。"), code=NetworkError.ADDRESS_NOT_RESERVED)
    with transaction.atomic():
        event_record(
            action=Action.ADDRESS_RELEASED,
            actor=actor,
            target=address,
            tenant=address.tenant,
            detail={"op": "address_unreserved", "ip": address.ip},
        )
        address.delete()


def _is_mac(value: str) -> bool:
    parts = value.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts)


def addresses_release(*, desktop_id: int, hold: int | None = None) -> list[Address]:
    """The desktop is gone: its addresses are held for ``hold`` seconds, then free again."""
    until = timezone.now() + timedelta(seconds=hold_seconds() if hold is None else hold)
    with transaction.atomic():
        addresses = list(
            Address.objects.select_for_update().filter(desktop_id=desktop_id, state=Address.State.ALLOCATED)
        )
        for address in addresses:
            address.state = Address.State.HELD
            address.hold_until = until
            address.save(update_fields=["state", "hold_until"])
            ElasticIP.objects.filter(address=address).update(address=None, applied=False, applied_to="")
            event_record(
                action=Action.ADDRESS_RELEASED,
                target=address,
                tenant=address.tenant,
                detail={"op": "address_released", "ip": address.ip, "mac": address.mac, "desktop": desktop_id},
            )
    return addresses


def addresses_purge_expired() -> int:
    """Delete held addresses whose hold is over; returns how many became free."""
    deleted, _detail = Address.objects.filter(state=Address.State.HELD, hold_until__lte=timezone.now()).delete()
    return deleted


def addresses_dhcp_set(*, address_ids: list[int], dhcp: str) -> None:
    """compute placed these NICs' desktop on an endpoint: whether the portal's DHCP serves them
    (``Address.Dhcp.VCENTER``: vCenter has no DHCP service, nothing is pushed there)."""
    Address.objects.filter(pk__in=address_ids).exclude(dhcp=dhcp).update(dhcp=dhcp)


def address_pushed(*, address_ids: list[int], endpoint: str) -> None:
    """compute pushed these bindings to an endpoint's DHCP."""
    Address.objects.filter(pk__in=address_ids).update(pushed_to=endpoint, pushed_at=timezone.now())

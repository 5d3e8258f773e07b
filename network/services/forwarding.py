"""Public address pools, elastic IPs (1:1 NAT) and port forwards; compute applies them on the hosts."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput, NotFound
from network import hooks, rules
from network.errors import NetworkError
from network.models import Address, ElasticIP, PortForward, PublicPool
from network.services._shared import parse_network, require_network_admin
from network.validation import checked
from tenants.models import Reservation
from tenants.services import quota_commit, quota_release, quota_reserve

if TYPE_CHECKING:
    from tenants.models import Tenant, User


def public_pool_create(*, actor: User | None, name: str, cidr: str, site: str = "main") -> PublicPool:
    if not rules.is_system_admin(actor):
        raise Forbidden(_("只有系统管理员可以管理公网地址池。"), code=NetworkError.NETWORK_MANAGE_FORBIDDEN)
    name, site = checked("name", name), checked("site", site)
    net = parse_network(cidr)
    with transaction.atomic():
        for other in PublicPool.objects.values_list("cidr", flat=True):
            if net.overlaps(ipaddress.IPv4Network(other)):
                raise Conflict(_("与已有地址池重叠。"), code=NetworkError.CIDR_OVERLAP, detail={"overlaps": other})
        if PublicPool.objects.filter(name=name).exists():
            raise Conflict(_("同名地址池已存在。"), code=NetworkError.POOL_NAME_TAKEN)
        pool = PublicPool.objects.create(name=name, cidr=str(net), site=site)
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=pool,
            detail={"op": "public_pool_created", "cidr": pool.cidr},
        )
    return pool


def elastic_ip_allocate(*, actor: User | None, tenant: Tenant, pool: PublicPool) -> ElasticIP:
    require_network_admin(actor, tenant)
    with transaction.atomic():
        pool = PublicPool.objects.locked(pool.pk)
        taken = set(ElasticIP.objects.filter(pool=pool).values_list("ip", flat=True))
        free = next((str(h) for h in ipaddress.IPv4Network(pool.cidr).hosts() if str(h) not in taken), None)
        if free is None:
            raise Conflict(_("公网地址池已用完。"), code=NetworkError.POOL_EXHAUSTED)
        # An elastic IP is the scarce resource the tenants' "ips" quota counts.
        reservation = quota_reserve(actor=actor, tenant=tenant, amounts={"ips": 1}, reason="elastic_ip")
        quota_commit(actor=actor, reservation=reservation)
        eip = ElasticIP.objects.create(pool=pool, tenant=tenant, ip=free, quota_reservation=str(reservation.pk))
        # Billing meters the address from now until its release, bound or not (with this transaction).
        hooks.fire_in_transaction("elastic_ip_held", eip=eip, held=True)
        event_record(
            action=Action.ELASTIC_IP_CHANGED,
            actor=actor,
            target=eip,
            tenant=tenant,
            detail={"op": "eip_allocated", "ip": free},
        )
    return eip


def elastic_ip_associate(*, actor: User | None, eip: ElasticIP, address: Address | None) -> ElasticIP:
    """Bind the elastic IP to a NIC of the same tenant (None unbinds it)."""
    require_network_admin(actor, eip.tenant)
    if address is not None and (address.tenant_id != eip.tenant_id or address.kind != Address.Kind.NIC):
        raise NotFound(_("网卡不存在。"), code=NetworkError.ADDRESS_NOT_FOUND)
    with transaction.atomic():
        eip = ElasticIP.objects.locked(eip.pk)
        if address is not None and eip.address_id not in (None, address.pk):
            raise Conflict(_("弹性 IP 已绑定到其他网卡，请先解绑。"), code=NetworkError.EIP_IN_USE)
        eip.address = address
        eip.applied = False
        eip.applied_to = ""
        eip.apply_note = ""
        eip.save(update_fields=["address", "applied", "applied_to", "apply_note"])
        event_record(
            action=Action.ELASTIC_IP_CHANGED,
            actor=actor,
            target=eip,
            tenant=eip.tenant,
            detail={"op": "eip_associated" if address else "eip_disassociated", "ip": eip.ip},
        )
        # Billing meters the elastic IP itself from allocation to release, so a binding changes no meter.
        hooks.fire_on_commit("forwarding_changed", eip_id=eip.pk)
    return eip


def elastic_ip_release(*, actor: User | None, eip: ElasticIP) -> None:
    require_network_admin(actor, eip.tenant)
    with transaction.atomic():
        eip = ElasticIP.objects.locked(eip.pk)
        if eip.address_id or eip.port_forwards.exists():
            raise Conflict(_("弹性 IP 仍在使用（已绑定或有端口转发）。"), code=NetworkError.EIP_IN_USE)
        event_record(
            action=Action.ELASTIC_IP_CHANGED,
            actor=actor,
            target=eip,
            tenant=eip.tenant,
            detail={"op": "eip_released", "ip": eip.ip},
        )
        if eip.quota_reservation:
            reservation = Reservation.objects.filter(pk=int(eip.quota_reservation)).first()
            if reservation is not None:
                quota_release(actor=actor, reservation=reservation)
        # Billing closes the address's interval now, before the row (and its meter) goes.
        hooks.fire_in_transaction("elastic_ip_held", eip=eip, held=False)
        eip.delete()


def port_forward_create(
    *, actor: User | None, eip: ElasticIP, address: Address, public_port: int, private_port: int, protocol: str = "tcp"
) -> PortForward:
    require_network_admin(actor, eip.tenant)
    if address.tenant_id != eip.tenant_id or address.kind != Address.Kind.NIC:
        raise NotFound(_("网卡不存在。"), code=NetworkError.ADDRESS_NOT_FOUND)
    if protocol not in PortForward.Protocol.values:
        raise InvalidInput(_("协议须为 tcp 或 udp。"), code=NetworkError.RULE_PROTOCOL_INVALID)
    for port in (public_port, private_port):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidInput(_("端口须在 1-65535 之间。"), code=NetworkError.PORT_INVALID)
    with transaction.atomic():
        eip = ElasticIP.objects.locked(eip.pk)
        if eip.port_forwards.filter(protocol=protocol, public_port=public_port).exists():
            raise Conflict(_("该公网端口已有转发。"), code=NetworkError.PORT_FORWARD_TAKEN)
        forward = PortForward.objects.create(
            elastic_ip=eip,
            tenant=eip.tenant,
            protocol=protocol,
            public_port=public_port,
            address=address,
            private_port=private_port,
        )
        event_record(
            action=Action.PORT_FORWARD_CHANGED,
            actor=actor,
            target=forward,
            tenant=eip.tenant,
            detail={"op": "port_forward_created", "forward": f"{eip.ip}:{public_port}->{address.ip}:{private_port}"},
        )
        hooks.fire_on_commit("forwarding_changed", eip_id=eip.pk)
    return forward


def port_forward_delete(*, actor: User | None, forward: PortForward) -> None:
    require_network_admin(actor, forward.tenant)
    with transaction.atomic():
        event_record(
            action=Action.PORT_FORWARD_CHANGED,
            actor=actor,
            target=forward,
            tenant=forward.tenant,
            detail={"op": "port_forward_deleted", "public_port": forward.public_port},
        )
        eip_id = forward.elastic_ip_id
        forward.delete()
        hooks.fire_on_commit("forwarding_changed", eip_id=eip_id)


def elastic_ip_applied(*, eip_id: int, endpoint: str, note: str = "") -> None:
    """compute tried to put an elastic IP's 1:1 NAT in place: on ``endpoint`` (empty: not, ``note`` says why)."""
    ElasticIP.objects.filter(pk=eip_id).update(applied=bool(endpoint), applied_to=endpoint, apply_note=note[:255])


def port_forward_applied(*, forward_id: int, endpoint: str, note: str = "") -> None:
    """compute tried to put a port forward in place: on ``endpoint`` (empty: not, ``note`` says why)."""
    PortForward.objects.filter(pk=forward_id).update(applied=bool(endpoint), applied_to=endpoint, apply_note=note[:255])

"""Networks, their subnets and VLAN/VXLAN segments, and the endpoints compute deployed them on."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput
from network import hooks, rules
from network.errors import NetworkError
from network.models import (
    SEGMENT_LIMITS,
    Address,
    Network,
    NetworkDeployment,
    ScopeLock,
    SegmentRange,
    SegmentType,
    Subnet,
)
from network.services._shared import parse_ip, parse_network, require_network_admin
from network.services.security_groups import security_group_default_ensure

if TYPE_CHECKING:
    from tenants.models import Tenant, User


# --- locks ------------------------------------------------------------------------------------


def _scope(tenant) -> str:
    return f"tenant:{tenant.pk}" if tenant is not None else "platform"


def _scope_row_ensure(tenant) -> None:
    """Create the scope's lock row ahead of the transaction that locks it: inserting it there
    would take gap locks that deadlock concurrent creators on InnoDB."""
    if not ScopeLock.objects.filter(scope=_scope(tenant)).exists():
        try:
            with transaction.atomic():
                ScopeLock.objects.create(scope=_scope(tenant))
        except IntegrityError:
            pass


def _scope_lock(tenant) -> None:
    """Serialise CIDR checks of one tenant (or of the platform's shared networks)."""
    ScopeLock.objects.select_for_update().get(scope=_scope(tenant))


# --- addressing and segments ------------------------------------------------------------------


def _subnet_addressing(cidr: str, gateway: str, dns: str, dhcp_start: str, dhcp_end: str) -> dict:
    net = parse_network(cidr)
    hosts_first, hosts_last = net.network_address + 1, net.broadcast_address - 1
    gw = parse_ip(gateway, "gateway") if gateway else hosts_first
    start = parse_ip(dhcp_start, "dhcp_start") if dhcp_start else gw + 1 if gw == hosts_first else hosts_first
    end = parse_ip(dhcp_end, "dhcp_end") if dhcp_end else hosts_last
    for name, value in (("gateway", gw), ("dhcp_start", start), ("dhcp_end", end)):
        if not hosts_first <= value <= hosts_last:
            raise InvalidInput(
                _("%(field)s %(ip)s 不在网段 %(cidr)s 的主机地址内。") % {"field": name, "ip": value, "cidr": net},
                code=NetworkError.IP_OUTSIDE_SUBNET,
                detail={"field": name},
            )
    if start > end:
        raise InvalidInput(_("DHCP 起始地址大于结束地址。"), code=NetworkError.DHCP_RANGE_INVALID)
    if start <= gw <= end and start == end:
        raise InvalidInput(_("DHCP 范围只有网关一个地址。"), code=NetworkError.DHCP_RANGE_INVALID)
    servers = [s.strip() for s in (dns or "").split(",") if s.strip()]
    for server in servers:
        parse_ip(server, "dns_servers")
    return {
        "cidr": str(net),
        "gateway": str(gw),
        "dhcp_start": str(start),
        "dhcp_end": str(end),
        "dns_servers": ",".join(servers),
    }


def _check_overlap(tenant, cidr: str) -> None:
    """Refuse a CIDR overlapping another of the same scope (a tenant's, or the shared ones)."""
    new = ipaddress.IPv4Network(cidr)
    same_scope = Subnet.objects.filter(tenant=tenant) if tenant is not None else Subnet.objects.filter(tenant=None)
    for other_id, other_cidr in same_scope.values_list("id", "cidr"):
        if new.overlaps(ipaddress.IPv4Network(other_cidr)):
            raise Conflict(
                _("网段 %(new)s 与已有网段 %(old)s 重叠。") % {"new": cidr, "old": other_cidr},
                code=NetworkError.CIDR_OVERLAP,
                detail={"cidr": cidr, "overlaps": other_cidr, "subnet": other_id},
            )


def _segment_allocate(*, site: str, kind: str, wanted: int | None) -> int | None:
    if kind == SegmentType.NONE:
        if wanted is not None:
            raise InvalidInput(_("未选择隔离方式时不能指定 VLAN/VXLAN 号。"), code=NetworkError.SEGMENT_UNEXPECTED)
        return None
    limit_low, limit_high = SEGMENT_LIMITS[kind]
    seg_range = SegmentRange.objects.select_for_update().filter(site=site, kind=kind).first()
    low, high = (seg_range.first, seg_range.last) if seg_range else (limit_low, limit_high)
    taken = set(
        Network.objects.filter(site=site, segment_type=kind, segment_id__isnull=False).values_list(
            "segment_id", flat=True
        )
    )
    if wanted is not None:
        if not low <= wanted <= high:
            raise InvalidInput(
                _("%(kind)s 号 %(id)s 不在站点的范围 %(low)s-%(high)s 内。")
                % {"kind": kind.upper(), "id": wanted, "low": low, "high": high},
                code=NetworkError.SEGMENT_OUT_OF_RANGE,
                detail={"segment_id": wanted, "range": [low, high]},
            )
        if wanted in taken:
            raise Conflict(
                _("%(kind)s 号 %(id)s 已被使用。") % {"kind": kind.upper(), "id": wanted},
                code=NetworkError.SEGMENT_IN_USE,
                detail={"segment_id": wanted},
            )
        return wanted
    for candidate in range(low, high + 1):
        if candidate not in taken:
            return candidate
    raise Conflict(_("站点的 %(kind)s 号已用完。") % {"kind": kind.upper()}, code=NetworkError.SEGMENT_EXHAUSTED)


def segment_range_set(*, actor: User | None, site: str, kind: str, first: int, last: int) -> SegmentRange:
    if not rules.is_system_admin(actor):
        raise Forbidden(_("只有系统管理员可以设置网段号范围。"), code=NetworkError.NETWORK_MANAGE_FORBIDDEN)
    if kind not in SEGMENT_LIMITS:
        raise InvalidInput(_("类型须为 vlan 或 vxlan。"), code=NetworkError.SEGMENT_KIND_INVALID)
    low, high = SEGMENT_LIMITS[kind]
    if not low <= first <= last <= high:
        raise InvalidInput(
            _("范围须在 %(low)s-%(high)s 内且起始不大于结束。") % {"low": low, "high": high},
            code=NetworkError.SEGMENT_RANGE_INVALID,
        )
    with transaction.atomic():
        seg_range, _created = SegmentRange.objects.update_or_create(
            site=site, kind=kind, defaults={"first": first, "last": last}
        )
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=seg_range,
            detail={"op": "segment_range", "site": site, "kind": kind, "first": first, "last": last},
        )
    return seg_range


# --- networks and subnets ---------------------------------------------------------------------


def network_create(
    *,
    actor: User | None,
    tenant: Tenant | None = None,
    name: str,
    kind: str = Network.Kind.ROUTER,
    site: str = "main",
    segment_type: str = SegmentType.NONE,
    segment_id: int | None = None,
    bridge: str = "",
    portgroup: str = "",
    description: str = "",
    cidr: str = "",
    gateway: str = "",
    dns_servers: str = "",
    dhcp_start: str = "",
    dhcp_end: str = "",
) -> Network:
    """A tenant network (or a shared one, tenant=None, system admin only), with its first subnet."""
    require_network_admin(actor, tenant)
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise InvalidInput(_("请填写网络名称（最多 64 个字符）。"), code=NetworkError.NETWORK_NAME_INVALID)
    if kind not in Network.Kind.values:
        raise InvalidInput(_("网络类型须为 flat 或 router。"), code=NetworkError.NETWORK_KIND_INVALID)
    if segment_type not in SegmentType.values:
        raise InvalidInput(_("隔离方式须为 none、vlan 或 vxlan。"), code=NetworkError.SEGMENT_KIND_INVALID)
    if kind == Network.Kind.FLAT and not (bridge or portgroup or segment_type == SegmentType.VLAN):
        # A VLAN alone is enough: each endpoint maps it to its bridge (or port group) for that VLAN.
        raise InvalidInput(_("扁平网络须指定主机网桥、vCenter 端口组或 VLAN。"), code=NetworkError.FLAT_NEEDS_BRIDGE)
    if bridge and (len(bridge) > 15 or not bridge.replace("-", "").replace("_", "").isalnum()):
        raise InvalidInput(_("网桥名无效（最多 15 个字母、数字、-、_）。"), code=NetworkError.BRIDGE_INVALID)
    addressing = _subnet_addressing(cidr, gateway, dns_servers, dhcp_start, dhcp_end) if cidr else None
    _scope_row_ensure(tenant)
    with transaction.atomic():
        _scope_lock(tenant)
        if Network.objects.filter(tenant=tenant, name=name).exists():
            raise Conflict(_("同名网络已存在。"), code=NetworkError.NETWORK_NAME_TAKEN, detail={"name": name})
        if addressing:
            _check_overlap(tenant, addressing["cidr"])
        segment = _segment_allocate(site=site, kind=segment_type, wanted=segment_id)
        try:
            with transaction.atomic():
                network = Network.objects.create(
                    tenant=tenant,
                    name=name,
                    kind=kind,
                    site=site,
                    segment_type=segment_type,
                    segment_id=segment,
                    bridge=bridge,
                    portgroup=portgroup,
                    description=description,
                )
        except IntegrityError as exc:
            # Another transaction took the same id between our check and insert.
            raise Conflict(_("VLAN/VXLAN 号已被使用，请重试。"), code=NetworkError.SEGMENT_IN_USE) from exc
        if addressing:
            Subnet.objects.create(network=network, tenant=tenant, **addressing)
        event_record(
            action=Action.NETWORK_CREATED,
            actor=actor,
            target=network,
            tenant=tenant,
            detail={"kind": kind, "segment": [segment_type, segment], "cidr": addressing and addressing["cidr"]},
        )
        if tenant is not None:
            security_group_default_ensure(tenant=tenant)
        hooks.fire_on_commit("network_changed", network_id=network.pk)
    return network


def subnet_create(
    *,
    actor: User | None,
    network: Network,
    cidr: str,
    gateway: str = "",
    dns_servers: str = "",
    dhcp_start: str = "",
    dhcp_end: str = "",
) -> Subnet:
    require_network_admin(actor, network.tenant)
    addressing = _subnet_addressing(cidr, gateway, dns_servers, dhcp_start, dhcp_end)
    _scope_row_ensure(network.tenant)
    with transaction.atomic():
        _scope_lock(network.tenant)
        _check_overlap(network.tenant, addressing["cidr"])
        subnet = Subnet.objects.create(network=network, tenant=network.tenant, **addressing)
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=network,
            tenant=network.tenant,
            detail={"op": "subnet_created", "cidr": subnet.cidr},
        )
        hooks.fire_on_commit("network_changed", network_id=network.pk)
    return subnet


def network_delete(*, actor: User | None, network: Network) -> None:
    require_network_admin(actor, network.tenant)
    with transaction.atomic():
        network = Network.objects.locked(network.pk)
        if Address.objects.filter(subnet__network=network, kind=Address.Kind.NIC).exists():
            raise Conflict(_("网络中仍有桌面网卡，不能删除。"), code=NetworkError.NETWORK_IN_USE)
        endpoints = list(network.deployments.values_list("endpoint", flat=True))
        Address.objects.filter(subnet__network=network).delete()
        event_record(
            action=Action.NETWORK_DELETED,
            actor=actor,
            target=network,
            tenant=network.tenant,
            detail={"name": network.name, "endpoints": endpoints},
        )
        network_id = network.pk
        network.delete()
        hooks.fire_on_commit("network_deleted", network_id=network_id, endpoints=endpoints)


def deployment_record(*, network_id: int, endpoint: str) -> None:
    """compute realised the network on an endpoint: the DHCP sync will visit it from now on."""
    NetworkDeployment.objects.get_or_create(network_id=network_id, endpoint=endpoint)


def deployment_forget(*, network_id: int, endpoint: str) -> None:
    NetworkDeployment.objects.filter(network_id=network_id, endpoint=endpoint).delete()

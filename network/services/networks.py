"""Networks, their subnets and VLAN/VXLAN segments, and the endpoints compute deployed them on."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput, NotFound
from network import hooks, rules
from network import selectors as network_selectors
from network.errors import NetworkError
from network.models import (
    SEGMENT_LIMITS,
    Address,
    Network,
    NetworkDeployment,
    ScopeLock,
    Segment,
    SegmentRange,
    SegmentType,
    Subnet,
)
from network.services._shared import parse_ip, parse_network, require_network_admin
from network.services.security_groups import security_group_default_ensure
from network.services.segments import check_pool_overlap, pool_for_subnet
from network.validation import checked

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


def _free_id(low: int, high: int, taken: set[int], skip: list[tuple[int, int]] = ()) -> int | None:
    """The lowest id of low..high neither taken nor inside one of the ``skip`` ranges."""
    candidate = low
    while candidate <= high:
        inside = next((last for first, last in skip if first <= candidate <= last), None)
        if inside is not None:
            candidate = inside + 1
        elif candidate in taken:
            candidate += 1
        else:
            return candidate
    return None


def _wanted_id(kind: str, wanted: int, ranges: list[tuple[int, int]], taken: set[int]) -> int:
    if not any(low <= wanted <= high for low, high in ranges):
        shown = ", ".join(f"{low}-{high}" for low, high in ranges)
        raise InvalidInput(
            _("%(kind)s 号 %(id)s 不在可用的范围 %(range)s 内。")
            % {"kind": kind.upper(), "id": wanted, "range": shown},
            code=NetworkError.SEGMENT_OUT_OF_RANGE,
            detail={"field": "segment_id", "segment_id": wanted, "range": [list(r) for r in ranges]},
        )
    if wanted in taken:
        raise Conflict(
            _("%(kind)s 号 %(id)s 已被使用。") % {"kind": kind.upper(), "id": wanted},
            code=NetworkError.SEGMENT_IN_USE,
            detail={"segment_id": wanted},
        )
    return wanted


def _segment_allocate(*, site: str, kind: str, wanted: int | None, ranges: list[tuple[int, int]] | None = None):
    """A VLAN/VXLAN id of the site: ``wanted`` if free and in range, else the lowest free one.

    ``ranges`` are the ids the caller may use (a tenant's assigned segments); None: the site's
    range (SegmentRange), else the whole id space, for the platform.
    """
    if kind == SegmentType.NONE:
        if wanted is not None:
            raise InvalidInput(_("未选择隔离方式时不能指定 VLAN/VXLAN 号。"), code=NetworkError.SEGMENT_UNEXPECTED)
        return None
    seg_range = SegmentRange.objects.select_for_update().filter(site=site, kind=kind).first()
    # The platform's own picks skip the ranges it gave tenants: those ids are the tenants' to use.
    given = (
        [] if ranges is not None else list(Segment.objects.filter(site=site, kind=kind).values_list("first", "last"))
    )
    if ranges is None:
        ranges = [(seg_range.first, seg_range.last) if seg_range else SEGMENT_LIMITS[kind]]
    taken = set(
        Network.objects.filter(site=site, segment_type=kind, segment_id__isnull=False).values_list(
            "segment_id", flat=True
        )
    )
    if wanted is not None:
        return _wanted_id(kind, wanted, ranges, taken)
    for low, high in ranges:
        free = _free_id(low, high, taken, given)
        if free is not None:
            return free
    shown = ", ".join(f"{low}-{high}" for low, high in ranges)
    raise Conflict(
        _("站点 %(site)s 的 %(kind)s 号（%(range)s）已全部使用，请系统管理员扩大范围或删除不用的网络。")
        % {"site": site, "kind": kind.upper(), "range": shown},
        code=NetworkError.SEGMENT_EXHAUSTED,
        detail={"site": site, "segment_type": kind, "range": [list(r) for r in ranges], "used": len(taken)},
    )


def segment_range_set(*, actor: User | None, site: str, kind: str, first: int, last: int) -> SegmentRange:
    if not rules.is_system_admin(actor):
        raise Forbidden(_("只有系统管理员可以设置网段号范围。"), code=NetworkError.NETWORK_MANAGE_FORBIDDEN)
    site = checked("site", site)
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


def _network_basics(name: str, kind: str, segment_type: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise InvalidInput(
            _("请填写网络名称（最多 64 个字符）。"), code=NetworkError.NETWORK_NAME_INVALID, detail={"field": "name"}
        )
    if kind not in Network.Kind.values:
        raise InvalidInput(_("网络类型须为 flat 或 router。"), code=NetworkError.NETWORK_KIND_INVALID)
    if segment_type not in SegmentType.values:
        raise InvalidInput(_("隔离方式须为 none、vlan 或 vxlan。"), code=NetworkError.SEGMENT_KIND_INVALID)
    return name


def _mismatch(message, field: str = "segment") -> InvalidInput:
    return InvalidInput(message, code=NetworkError.SEGMENT_MISMATCH, detail={"field": field})


def _on_segment(segment: Segment, tenant, *, kind: str, segment_type: str, bridge: str, portgroup: str) -> dict:
    """A network on a platform segment takes its bridge, port group or id range (and site) from it."""
    if tenant is not None and not network_selectors.segments_of_tenant(tenant).filter(pk=segment.pk).exists():
        raise NotFound(
            _("物理网段不存在或未分配给本租户。"), code=NetworkError.SEGMENT_NOT_FOUND, detail={"field": "segment"}
        )
    if bridge or portgroup:
        raise _mismatch(_("选择物理网段后不能再填写网桥或端口组。"), "bridge" if bridge else "portgroup")
    placement = {"segment": segment, "site": segment.site, "bridge": "", "portgroup": "", "ranges": None}
    if segment.kind in (Segment.Kind.BRIDGE, Segment.Kind.PORTGROUP):
        if kind != Network.Kind.FLAT or segment_type != SegmentType.NONE:
            raise _mismatch(_("主机网桥或端口组只能用于不带 VLAN/VXLAN 的扁平网络。"))
        placement[segment.kind] = segment.bridge or segment.portgroup
        return {**placement, "segment_type": SegmentType.NONE}
    if segment_type not in (SegmentType.NONE, segment.kind):
        raise _mismatch(_("所选网段的类型与隔离方式不符。"))
    return {**placement, "segment_type": segment.kind, "ranges": [(segment.first, segment.last)]}


def _from_assigned(tenant, *, kind: str, site: str, segment_type: str, bridge: str, portgroup: str) -> dict:
    """A tenant admin without a chosen segment: never a bridge or port group of its own choosing,
    and VLAN/VXLAN ids only from the ranges assigned to the tenant (or above it)."""
    if bridge or portgroup:
        raise InvalidInput(
            _("租户管理员只能使用分配给本租户的物理网段，不能直接指定网桥或端口组。"),
            code=NetworkError.SEGMENT_REQUIRED,
            detail={"field": "bridge" if bridge else "portgroup"},
        )
    if kind == Network.Kind.FLAT and segment_type != SegmentType.VLAN:
        raise InvalidInput(
            _("扁平网络须选择分配给本租户的物理网段。"), code=NetworkError.SEGMENT_REQUIRED, detail={"field": "segment"}
        )
    placement = {"segment": None, "site": site, "bridge": "", "portgroup": "", "segment_type": segment_type}
    if segment_type == SegmentType.NONE:
        return {**placement, "ranges": None}
    assigned = list(network_selectors.segments_of_tenant(tenant, kind=segment_type, site=site))
    if not assigned:
        raise InvalidInput(
            _("本租户在站点 %(site)s 没有分配 %(kind)s 号范围。") % {"site": site, "kind": segment_type.upper()},
            code=NetworkError.SEGMENT_REQUIRED,
            detail={"field": "segment_type"},
        )
    return {**placement, "ranges": [(s.first, s.last) for s in assigned], "assigned": assigned}


def _placement(actor, tenant, segment, *, kind, site, segment_type, bridge, portgroup) -> dict:
    """Where the network sits on the physical network: {"segment", "site", "bridge", "portgroup",
    "segment_type", "ranges"}; the platform may name a bridge or port group, tenants only segments."""
    bridge = checked("bridge", bridge, blank=True)
    portgroup = checked("portgroup", portgroup, blank=True)
    shape = {"kind": kind, "segment_type": segment_type, "bridge": bridge, "portgroup": portgroup}
    if segment is not None:
        return _on_segment(segment, tenant, **shape)
    if not rules.is_system_admin(actor):
        return _from_assigned(tenant, site=site, **shape)
    if kind == Network.Kind.FLAT and not (bridge or portgroup or segment_type == SegmentType.VLAN):
        # A VLAN alone is enough: each endpoint maps it to its bridge (or port group) for that VLAN.
        raise InvalidInput(
            _("扁平网络须指定主机网桥、vCenter 端口组或 VLAN。"),
            code=NetworkError.FLAT_NEEDS_BRIDGE,
            detail={"field": "bridge"},
        )
    return {
        "segment": None,
        "site": site,
        "bridge": bridge,
        "portgroup": portgroup,
        "segment_type": segment_type,
        "ranges": None,
    }


def _subnet_place(tenant, cidr: str, *, platform: bool):
    """Checks of a new subnet inside the scope lock: no overlap within the tenant, inside the
    tenant's pools (tenant admins), never in another tenant's pool nor over a subnet of the pool."""
    _check_overlap(tenant, cidr)
    pool = pool_for_subnet(tenant=tenant, cidr=cidr, platform=platform)
    check_pool_overlap(pool, cidr)
    return pool


def _network_insert(*, tenant, name: str, kind: str, description: str, placement: dict, number) -> Network:
    segment = placement["segment"]
    if segment is None and number is not None:
        segment = next((s for s in placement.get("assigned", ()) if s.first <= number <= s.last), None)
    try:
        with transaction.atomic():
            return Network.objects.create(
                tenant=tenant,
                name=name,
                kind=kind,
                site=placement["site"],
                segment_type=placement["segment_type"],
                segment_id=number,
                platform_segment=segment,
                bridge=placement["bridge"],
                portgroup=placement["portgroup"],
                description=description,
            )
    except IntegrityError as exc:
        # Another transaction took the same id between our check and insert.
        raise Conflict(_("VLAN/VXLAN 号已被使用，请重试。"), code=NetworkError.SEGMENT_IN_USE) from exc


def network_create(
    *,
    actor: User | None,
    tenant: Tenant | None = None,
    name: str,
    kind: str = Network.Kind.ROUTER,
    site: str = "main",
    segment_type: str = SegmentType.NONE,
    segment_id: int | None = None,
    platform_segment: Segment | None = None,
    bridge: str = "",
    portgroup: str = "",
    description: str = "",
    cidr: str = "",
    gateway: str = "",
    dns_servers: str = "",
    dhcp_start: str = "",
    dhcp_end: str = "",
) -> Network:
    """A tenant network (or a shared one, tenant=None, system admin only), with its first subnet.

    A tenant admin places it only on what the platform assigned to the tenant: a segment (bridge,
    port group, VLAN/VXLAN range) and a subnet inside one of its address pools.
    """
    require_network_admin(actor, tenant)
    name = _network_basics(name, kind, segment_type)
    site = checked("site", site)
    placement = _placement(
        actor,
        tenant,
        platform_segment,
        kind=kind,
        site=site,
        segment_type=segment_type,
        bridge=bridge,
        portgroup=portgroup,
    )
    addressing = _subnet_addressing(cidr, gateway, dns_servers, dhcp_start, dhcp_end) if cidr else None
    _scope_row_ensure(tenant)
    with transaction.atomic():
        _scope_lock(tenant)
        if Network.objects.filter(tenant=tenant, name=name).exists():
            raise Conflict(_("同名网络已存在。"), code=NetworkError.NETWORK_NAME_TAKEN, detail={"name": name})
        pool = _subnet_place(tenant, addressing["cidr"], platform=rules.is_system_admin(actor)) if addressing else None
        number = _segment_allocate(
            site=placement["site"], kind=placement["segment_type"], wanted=segment_id, ranges=placement["ranges"]
        )
        network = _network_insert(
            tenant=tenant, name=name, kind=kind, description=description, placement=placement, number=number
        )
        if addressing:
            Subnet.objects.create(network=network, tenant=tenant, pool=pool, **addressing)
        event_record(
            action=Action.NETWORK_CREATED,
            actor=actor,
            target=network,
            tenant=tenant,
            detail={
                "kind": kind,
                "segment": [network.segment_type, number],
                "on": network.platform_segment.name if network.platform_segment_id else None,
                "cidr": addressing and addressing["cidr"],
            },
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
        pool = _subnet_place(network.tenant, addressing["cidr"], platform=rules.is_system_admin(actor))
        subnet = Subnet.objects.create(network=network, tenant=network.tenant, pool=pool, **addressing)
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


def deployment_record(*, network_id: int, endpoint: str) -> bool:
    """compute realised the network on an endpoint: the DHCP sync will visit it from now on.
    True when the endpoint is new to the network (a host joined it)."""
    _row, created = NetworkDeployment.objects.get_or_create(network_id=network_id, endpoint=endpoint)
    return created


def network_vni_ensure(*, network_id: int) -> Network:
    """A network about to span hosts gets its VXLAN id (VNI) from its site's platform VXLAN range, once.

    A network with a VXLAN id keeps it; one on a VLAN keeps its VLAN (the hosts put that VLAN in the
    bridge instead). Exhausted range: Conflict ``segment_exhausted``, nothing changed.
    """
    with transaction.atomic():
        network = Network.objects.locked(network_id)
        if network.segment_type != SegmentType.NONE:
            return network
        number = _segment_allocate(site=network.site, kind=SegmentType.VXLAN, wanted=None)
        network.segment_type, network.segment_id = SegmentType.VXLAN, number
        try:
            with transaction.atomic():
                network.save(update_fields=["segment_type", "segment_id"])
        except IntegrityError as exc:
            raise Conflict(_("VLAN/VXLAN 号已被使用，请重试。"), code=NetworkError.SEGMENT_IN_USE) from exc
        event_record(
            action=Action.NETWORK_CHANGED,
            target=network,
            tenant=network.tenant,
            detail={"op": "vni_allocated", "vni": number, "site": network.site},
        )
    return network


def deployment_forget(*, network_id: int, endpoint: str) -> None:
    NetworkDeployment.objects.filter(network_id=network_id, endpoint=endpoint).delete()

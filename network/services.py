"""Writes of the network app: networks and subnets, IPAM (IP/MAC), security groups, elastic IPs, forwards.

Every service is keyword-only, runs in one transaction and records its audit event
there. Races are settled by row locks taken in one helper each (``Subnet.objects.locked``
for IPAM, ``_scope_lock`` for CIDR overlaps, ``SegmentRange.objects.locked`` for
VLAN/VXLAN ids) with unique constraints behind them. Pushing anything to a hypervisor
is compute's job (``compute/networking.py``): services here tell it through
``network.hooks`` once their transaction commits.
"""

import ipaddress
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput, NotFound
from network import hooks, rules
from network.errors import NetworkError
from network.models import (
    SEGMENT_LIMITS,
    Address,
    ElasticIP,
    Network,
    NetworkDeployment,
    PortForward,
    PublicPool,
    ScopeLock,
    SecurityGroup,
    SecurityGroupRule,
    SegmentRange,
    SegmentType,
    Subnet,
)
from tenants.models import Reservation
from tenants.services import quota_commit, quota_release, quota_reserve

MAC_PREFIX = "52:54:00"
MAC_ATTEMPTS = 16


def hold_seconds() -> int:
    """How long a released address stays out of circulation (a guest may still use its lease)."""
    return int(getattr(settings, "NETWORK_IP_HOLD_SECONDS", 300))


def campus_cidrs() -> list[str]:
    return list(getattr(settings, "NETWORK_CAMPUS_CIDRS", ["10.0.0.0/8", "172.16.0.0/12"]))


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


# --- permission rules -------------------------------------------------------------------------


def _require_network_admin(actor, tenant) -> None:
    if not rules.can_manage_networks(actor, tenant):
        raise Forbidden(_("只有租户管理员或系统管理员可以管理网络。"), code=NetworkError.NETWORK_MANAGE_FORBIDDEN)


# --- networks and subnets ---------------------------------------------------------------------


def _parse_network(cidr: str) -> ipaddress.IPv4Network:
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


def _parse_ip(value: str, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError as exc:
        raise InvalidInput(
            _("%(field)s 不是有效的 IPv4 地址。") % {"field": field},
            code=NetworkError.IP_INVALID,
            detail={"field": field},
        ) from exc


def _subnet_addressing(cidr: str, gateway: str, dns: str, dhcp_start: str, dhcp_end: str) -> dict:
    net = _parse_network(cidr)
    hosts_first, hosts_last = net.network_address + 1, net.broadcast_address - 1
    gw = _parse_ip(gateway, "gateway") if gateway else hosts_first
    start = _parse_ip(dhcp_start, "dhcp_start") if dhcp_start else gw + 1 if gw == hosts_first else hosts_first
    end = _parse_ip(dhcp_end, "dhcp_end") if dhcp_end else hosts_last
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
        _parse_ip(server, "dns_servers")
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


def segment_range_set(*, actor, site: str, kind: str, first: int, last: int) -> SegmentRange:
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


def network_create(
    *,
    actor,
    tenant=None,
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
    _require_network_admin(actor, tenant)
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
    actor,
    network: Network,
    cidr: str,
    gateway: str = "",
    dns_servers: str = "",
    dhcp_start: str = "",
    dhcp_end: str = "",
) -> Subnet:
    _require_network_admin(actor, network.tenant)
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


def network_delete(*, actor, network: Network) -> None:
    _require_network_admin(actor, network.tenant)
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


# --- IPAM -------------------------------------------------------------------------------------


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
    tenant,
    desktop_id: int,
    network: Network | None = None,
    subnet: Subnet | None = None,
    owner=None,
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
            wanted = _parse_ip(ip, "ip")
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
            hostname=hostname[:63],
            security_group=group,
        )
        event_record(
            action=Action.ADDRESS_ALLOCATED,
            target=address,
            tenant=tenant,
            detail={"op": "address_allocated", "ip": address.ip, "mac": address.mac, "desktop": desktop_id},
        )
    return address


def address_reserve(*, actor, subnet: Subnet, ip: str, mac: str = "", hostname: str = "") -> Address:
    """Keep an address out of the pool (a static host, a printer); with a MAC it gets a DHCP entry."""
    _require_network_admin(actor, subnet.network.tenant)
    wanted = _parse_ip(ip, "ip")
    mac = (mac or "").strip().lower()
    if mac and not _is_mac(mac):
        raise InvalidInput(_("MAC 地址格式无效。"), code=NetworkError.MAC_INVALID)
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
            hostname=hostname[:63],
        )
        event_record(
            action=Action.ADDRESS_RESERVED,
            actor=actor,
            target=address,
            tenant=subnet.network.tenant,
            detail={"op": "address_reserved", "ip": address.ip, "mac": mac},
        )
    return address


def address_unreserve(*, actor, address: Address) -> None:
    _require_network_admin(actor, address.subnet.network.tenant)
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


# --- security groups --------------------------------------------------------------------------

DEFAULT_GROUP_NAME = "default"


def _default_rules() -> list[dict]:
    """What a lab needs: RDP and SSH (and ping) from the campus, everything outbound."""
    result = []
    for cidr in campus_cidrs():
        result.append({"direction": "in", "protocol": "tcp", "port_min": 3389, "port_max": 3389, "remote_cidr": cidr})
        result.append({"direction": "in", "protocol": "tcp", "port_min": 22, "port_max": 22, "remote_cidr": cidr})
        result.append({"direction": "in", "protocol": "icmp", "remote_cidr": cidr})
    result.append({"direction": "out", "protocol": "all"})
    return result


def security_group_default_ensure(*, tenant) -> SecurityGroup:
    """The tenant's default group, created with the default rules the first time it is needed."""
    group = SecurityGroup.objects.filter(tenant=tenant, is_default=True).first()
    if group is not None:
        return group
    with transaction.atomic():
        try:
            with transaction.atomic():
                group = SecurityGroup.objects.create(
                    tenant=tenant,
                    name=DEFAULT_GROUP_NAME,
                    is_default=True,
                    description=_("默认：允许校园网 RDP/SSH/ICMP 入站，允许全部出站；其他租户网络不可访问。"),
                )
        except IntegrityError:
            return SecurityGroup.objects.get(tenant=tenant, name=DEFAULT_GROUP_NAME)
        for rule in _default_rules():
            SecurityGroupRule.objects.create(group=group, **rule)
        event_record(
            action=Action.SECURITY_GROUP_CHANGED, target=group, tenant=tenant, detail={"op": "default_created"}
        )
    return group


def _require_group_admin(actor, group_tenant) -> None:
    if not rules.can_manage_networks(actor, group_tenant):
        raise Forbidden(
            _("只有租户管理员或系统管理员可以管理安全组。"), code=NetworkError.SECURITY_GROUP_MANAGE_FORBIDDEN
        )


def security_group_create(*, actor, tenant, name: str, description: str = "") -> SecurityGroup:
    _require_group_admin(actor, tenant)
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise InvalidInput(_("请填写安全组名称（最多 64 个字符）。"), code=NetworkError.SECURITY_GROUP_NAME_INVALID)
    with transaction.atomic():
        security_group_default_ensure(tenant=tenant)
        if SecurityGroup.objects.filter(tenant=tenant, name=name).exists():
            raise Conflict(_("同名安全组已存在。"), code=NetworkError.SECURITY_GROUP_NAME_TAKEN)
        group = SecurityGroup.objects.create(tenant=tenant, name=name, description=description)
        event_record(
            action=Action.SECURITY_GROUP_CHANGED, actor=actor, target=group, tenant=tenant, detail={"op": "created"}
        )
    return group


def security_group_delete(*, actor, group: SecurityGroup) -> None:
    _require_group_admin(actor, group.tenant)
    with transaction.atomic():
        group = SecurityGroup.objects.locked(group.pk)
        if group.is_default:
            raise Conflict(_("默认安全组不能删除。"), code=NetworkError.SECURITY_GROUP_DEFAULT)
        if group.addresses.exists():
            raise Conflict(_("安全组仍被桌面网卡使用，不能删除。"), code=NetworkError.SECURITY_GROUP_IN_USE)
        if SecurityGroupRule.objects.filter(remote_group=group).exclude(group=group).exists():
            raise Conflict(_("安全组被其他安全组的规则引用，不能删除。"), code=NetworkError.SECURITY_GROUP_REFERENCED)
        event_record(
            action=Action.SECURITY_GROUP_CHANGED,
            actor=actor,
            target=group,
            tenant=group.tenant,
            detail={"op": "deleted", "name": group.name},
        )
        group_id = group.pk
        group.rules.all().delete()
        group.delete()
        hooks.fire_on_commit("security_group_deleted", group_id=group_id)


def _validate_rule(
    *, group: SecurityGroup, direction: str, protocol: str, port_min, port_max, remote_cidr: str, remote_group
) -> dict:
    if direction not in SecurityGroupRule.Direction.values:
        raise InvalidInput(_("方向须为 in 或 out。"), code=NetworkError.RULE_DIRECTION_INVALID)
    if protocol not in SecurityGroupRule.Protocol.values:
        raise InvalidInput(_("协议须为 tcp、udp、icmp 或 all。"), code=NetworkError.RULE_PROTOCOL_INVALID)
    if port_min in ("", None) and port_max not in ("", None):
        raise InvalidInput(_("请填写起始端口。"), code=NetworkError.RULE_PORT_RANGE_INVALID)
    if port_min not in ("", None):
        if protocol not in ("tcp", "udp"):
            raise InvalidInput(_("只有 TCP 和 UDP 规则可以指定端口。"), code=NetworkError.RULE_PORT_RANGE_INVALID)
        try:
            port_min = int(port_min)
            port_max = int(port_max) if port_max not in ("", None) else port_min
        except (TypeError, ValueError) as exc:
            raise InvalidInput(_("端口须为整数。"), code=NetworkError.RULE_PORT_RANGE_INVALID) from exc
        if not (1 <= port_min <= port_max <= 65535):
            raise InvalidInput(
                _("端口范围须在 1-65535 之间且起始不大于结束。"),
                code=NetworkError.RULE_PORT_RANGE_INVALID,
                detail={"port_min": port_min, "port_max": port_max},
            )
    else:
        port_min = port_max = None
    remote_cidr = (remote_cidr or "").strip()
    if remote_cidr and remote_group is not None:
        raise InvalidInput(_("远端网段和远端安全组只能二选一。"), code=NetworkError.RULE_REMOTE_INVALID)
    if remote_cidr:
        try:
            remote_cidr = str(ipaddress.IPv4Network(remote_cidr, strict=False))
        except ValueError as exc:
            raise InvalidInput(_("远端网段无效。"), code=NetworkError.RULE_REMOTE_INVALID) from exc
    if remote_group is not None and remote_group.tenant_id != group.tenant_id:
        raise NotFound(_("远端安全组不存在。"), code=NetworkError.SECURITY_GROUP_NOT_FOUND)
    return {
        "direction": direction,
        "protocol": protocol,
        "port_min": port_min,
        "port_max": port_max,
        "remote_cidr": remote_cidr,
        "remote_group": remote_group,
    }


def _group_changed(group: SecurityGroup) -> None:
    SecurityGroup.objects.filter(pk=group.pk).update(revision=group.revision + 1)
    hooks.fire_on_commit("security_group_changed", group_id=group.pk)


def rule_add(
    *,
    actor,
    group: SecurityGroup,
    direction: str,
    protocol: str = "tcp",
    port_min=None,
    port_max=None,
    remote_cidr: str = "",
    remote_group: SecurityGroup | None = None,
    description: str = "",
) -> SecurityGroupRule:
    """Add a rule; every desktop using the group gets it (its nwfilter is redefined after commit)."""
    _require_group_admin(actor, group.tenant)
    fields = _validate_rule(
        group=group,
        direction=direction,
        protocol=protocol,
        port_min=port_min,
        port_max=port_max,
        remote_cidr=remote_cidr,
        remote_group=remote_group,
    )
    with transaction.atomic():
        group = SecurityGroup.objects.locked(group.pk)
        rule = SecurityGroupRule.objects.create(group=group, description=description[:255], **fields)
        event_record(
            action=Action.SECURITY_GROUP_CHANGED,
            actor=actor,
            target=group,
            tenant=group.tenant,
            detail={"op": "rule_added", "rule": str(rule)},
        )
        _group_changed(group)
    return rule


def rule_delete(*, actor, rule: SecurityGroupRule) -> None:
    _require_group_admin(actor, rule.group.tenant)
    with transaction.atomic():
        group = SecurityGroup.objects.locked(rule.group_id)
        event_record(
            action=Action.SECURITY_GROUP_CHANGED,
            actor=actor,
            target=group,
            tenant=group.tenant,
            detail={"op": "rule_deleted", "rule": str(rule)},
        )
        rule.delete()
        _group_changed(group)


def nic_security_group_set(*, actor, address: Address, group: SecurityGroup) -> Address:
    _require_group_admin(actor, address.tenant)
    if address.kind != Address.Kind.NIC or group.tenant_id != address.tenant_id:
        raise NotFound(_("安全组不存在。"), code=NetworkError.SECURITY_GROUP_NOT_FOUND)
    with transaction.atomic():
        Address.objects.filter(pk=address.pk).update(security_group=group)
        address.security_group = group
        event_record(
            action=Action.SECURITY_GROUP_CHANGED,
            actor=actor,
            target=group,
            tenant=group.tenant,
            detail={"op": "nic_assigned", "ip": address.ip, "desktop": address.desktop_id},
        )
        hooks.fire_on_commit("nic_changed", desktop_id=address.desktop_id)
    return address


# --- elastic IPs and port forwards ------------------------------------------------------------


def public_pool_create(*, actor, name: str, cidr: str, site: str = "main") -> PublicPool:
    if not rules.is_system_admin(actor):
        raise Forbidden(_("只有系统管理员可以管理公网地址池。"), code=NetworkError.NETWORK_MANAGE_FORBIDDEN)
    net = _parse_network(cidr)
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


def elastic_ip_allocate(*, actor, tenant, pool: PublicPool) -> ElasticIP:
    _require_network_admin(actor, tenant)
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
        event_record(
            action=Action.ELASTIC_IP_CHANGED,
            actor=actor,
            target=eip,
            tenant=tenant,
            detail={"op": "eip_allocated", "ip": free},
        )
    return eip


def elastic_ip_associate(*, actor, eip: ElasticIP, address: Address | None) -> ElasticIP:
    """Bind the elastic IP to a NIC of the same tenant (None unbinds it)."""
    _require_network_admin(actor, eip.tenant)
    if address is not None and (address.tenant_id != eip.tenant_id or address.kind != Address.Kind.NIC):
        raise NotFound(_("网卡不存在。"), code=NetworkError.ADDRESS_NOT_FOUND)
    with transaction.atomic():
        eip = ElasticIP.objects.locked(eip.pk)
        if address is not None and eip.address_id not in (None, address.pk):
            raise Conflict(_("弹性 IP 已绑定到其他网卡，请先解绑。"), code=NetworkError.EIP_IN_USE)
        previous = eip.address
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
        # The desktops' address counts changed: metered from now on, with this transaction
        # (desktops in id order, so two rebinds crossing the same two desktops cannot deadlock).
        rebound = {}
        if previous is not None and previous != address and previous.desktop_id:
            rebound[previous.desktop_id] = "eip_released"
        if address is not None and previous != address and address.desktop_id:
            rebound[address.desktop_id] = "eip_bound"
        for desktop_id, reason in sorted(rebound.items()):
            hooks.fire_in_transaction("elastic_ip_rebound", desktop_id=desktop_id, reason=reason)
        hooks.fire_on_commit("forwarding_changed", eip_id=eip.pk)
    return eip


def elastic_ip_release(*, actor, eip: ElasticIP) -> None:
    _require_network_admin(actor, eip.tenant)
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
        eip.delete()


def port_forward_create(
    *, actor, eip: ElasticIP, address: Address, public_port: int, private_port: int, protocol: str = "tcp"
) -> PortForward:
    _require_network_admin(actor, eip.tenant)
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


def port_forward_delete(*, actor, forward: PortForward) -> None:
    _require_network_admin(actor, forward.tenant)
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

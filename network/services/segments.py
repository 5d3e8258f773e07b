"""Platform segments (host bridges, port groups, VLAN/VXLAN ranges) and address pools: the system
admin creates them and assigns them to tenants; tenants use only what was assigned to them or to a
tenant above them (network.selectors.segments_of_tenant, address_pools_of_tenant)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput
from network import rules
from network.errors import NetworkError
from network.models import SEGMENT_LIMITS, AddressPool, Network, Segment, SegmentAssignment, Subnet
from network.services._shared import parse_network
from network.validation import checked

if TYPE_CHECKING:
    from tenants.models import Tenant, User


def _require_system_admin(actor) -> None:
    if not rules.is_system_admin(actor):
        raise Forbidden(_("只有系统管理员可以管理物理网段和地址池。"), code=NetworkError.SEGMENT_MANAGE_FORBIDDEN)


def _subtree(tenant: Tenant):
    from tenants.models import Tenant

    return Tenant.objects.filter(path__startswith=tenant.path)


# --- segments ---------------------------------------------------------------------------------


def _segment_range(kind: str, first, last) -> tuple[int, int]:
    low, high = SEGMENT_LIMITS[kind]
    try:
        first, last = int(first), int(last if last not in (None, "") else first)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            _("请填写起始号和结束号。"), code=NetworkError.SEGMENT_RANGE_INVALID, detail={"field": "first"}
        ) from exc
    if not low <= first <= last <= high:
        raise InvalidInput(
            _("范围须在 %(low)s-%(high)s 内且起始不大于结束。") % {"low": low, "high": high},
            code=NetworkError.SEGMENT_RANGE_INVALID,
            detail={"field": "first", "range": [low, high]},
        )
    return first, last


def _segment_fields(kind: str, bridge: str, portgroup: str, first, last) -> dict:
    """The one value a segment of ``kind`` carries, checked; the others empty."""
    fields = {"bridge": "", "portgroup": "", "first": None, "last": None}
    if kind == Segment.Kind.BRIDGE:
        fields["bridge"] = checked("bridge", bridge)
    elif kind == Segment.Kind.PORTGROUP:
        fields["portgroup"] = checked("portgroup", portgroup)
    elif kind in (Segment.Kind.VLAN, Segment.Kind.VXLAN):
        fields["first"], fields["last"] = _segment_range(kind, first, last)
    else:
        raise InvalidInput(
            _("类型须为 bridge、portgroup、vlan 或 vxlan。"),
            code=NetworkError.SEGMENT_KIND_INVALID,
            detail={"field": "kind"},
        )
    return fields


def _segment_clash(site: str, kind: str, fields: dict) -> Segment | None:
    """Another segment of the site with the same bridge or port group, or an overlapping id range."""
    same = Segment.objects.filter(site=site, kind=kind)
    if kind == Segment.Kind.BRIDGE:
        return same.filter(bridge=fields["bridge"]).first()
    if kind == Segment.Kind.PORTGROUP:
        return same.filter(portgroup=fields["portgroup"]).first()
    return same.filter(first__lte=fields["last"], last__gte=fields["first"]).first()


def segment_create(
    *,
    actor: User | None,
    name: str,
    kind: str,
    site: str = "main",
    bridge: str = "",
    portgroup: str = "",
    first: int | None = None,
    last: int | None = None,
    description: str = "",
) -> Segment:
    _require_system_admin(actor)
    name, site = checked("name", name), checked("site", site)
    fields = _segment_fields(kind, bridge, portgroup, first, last)
    with transaction.atomic():
        # One lock for every segment write: overlap checks are then race-free.
        list(Segment.objects.select_for_update().filter(site=site, kind=kind).values_list("pk", flat=True))
        if Segment.objects.filter(name=name).exists():
            raise Conflict(_("同名网段已存在。"), code=NetworkError.SEGMENT_NAME_TAKEN, detail={"field": "name"})
        clash = _segment_clash(site, kind, fields)
        if clash is not None:
            raise Conflict(
                _("与已有网段“%(name)s”重叠。") % {"name": clash.name},
                code=NetworkError.SEGMENT_OVERLAP,
                detail={"overlaps": clash.pk},
            )
        segment = Segment.objects.create(
            name=name, kind=kind, site=site, description=(description or "")[:255], **fields
        )
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=segment,
            detail={"op": "segment_created", "kind": kind, "site": site, "value": segment.value},
        )
    return segment


def segment_delete(*, actor: User | None, segment: Segment) -> None:
    _require_system_admin(actor)
    with transaction.atomic():
        segment = Segment.objects.locked(segment.pk)
        if segment.networks.exists():
            raise Conflict(_("仍有网络使用该网段，不能删除。"), code=NetworkError.SEGMENT_USED)
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=segment,
            detail={"op": "segment_deleted", "name": segment.name, "value": segment.value},
        )
        segment.delete()


def segment_assign(*, actor: User | None, segment: Segment, tenant: Tenant, assigned: bool = True) -> Segment:
    """Give the tenant (and the tenants under it) the segment, or take it back: taking it back is
    refused while a network of that subtree uses it."""
    _require_system_admin(actor)
    with transaction.atomic():
        segment = Segment.objects.locked(segment.pk)
        if assigned:
            SegmentAssignment.objects.get_or_create(segment=segment, tenant=tenant)
        else:
            if Network.objects.filter(platform_segment=segment, tenant__in=_subtree(tenant)).exists():
                raise Conflict(_("该租户（或其下级）仍有网络使用此网段，不能收回。"), code=NetworkError.SEGMENT_USED)
            SegmentAssignment.objects.filter(segment=segment, tenant=tenant).delete()
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=segment,
            tenant=tenant,
            detail={"op": "segment_assigned" if assigned else "segment_unassigned", "name": segment.name},
        )
    return segment


# --- address pools ----------------------------------------------------------------------------


def _prefixlen(value) -> int:
    try:
        prefixlen = int(value)
    except (TypeError, ValueError):
        prefixlen = -1
    if not 8 <= prefixlen <= 29:
        raise InvalidInput(
            _("最大子网须为 8 到 29 之间的掩码长度。"),
            code=NetworkError.ADDRESS_POOL_INVALID,
            detail={"field": "min_prefixlen"},
        )
    return prefixlen


def address_pool_create(
    *,
    actor: User | None,
    name: str,
    cidr: str,
    min_prefixlen: int = 24,
    tenant: Tenant | None = None,
    description: str = "",
) -> AddressPool:
    """A range of private addresses for tenant subnets; pools never overlap one another."""
    _require_system_admin(actor)
    name = checked("name", name)
    net = parse_network(cidr)
    prefixlen = _prefixlen(min_prefixlen)
    if prefixlen < net.prefixlen:
        raise InvalidInput(
            _("最大子网不能大于地址池本身。"), code=NetworkError.ADDRESS_POOL_INVALID, detail={"field": "min_prefixlen"}
        )
    with transaction.atomic():
        list(AddressPool.objects.select_for_update().values_list("pk", flat=True))
        if AddressPool.objects.filter(name=name).exists():
            raise Conflict(_("同名地址池已存在。"), code=NetworkError.ADDRESS_POOL_NAME_TAKEN, detail={"field": "name"})
        for other in AddressPool.objects.all():
            if net.overlaps(other.ip_network):
                raise Conflict(
                    _("与地址池“%(name)s”（%(cidr)s）重叠。") % {"name": other.name, "cidr": other.cidr},
                    code=NetworkError.ADDRESS_POOL_OVERLAP,
                    detail={"overlaps": other.pk},
                )
        pool = AddressPool.objects.create(
            name=name, cidr=str(net), min_prefixlen=prefixlen, description=(description or "")[:255]
        )
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=pool,
            detail={"op": "address_pool_created", "cidr": pool.cidr},
        )
    if tenant is not None:
        pool = address_pool_assign(actor=actor, pool=pool, tenant=tenant)
    return pool


def _foreign_subnets(pool: AddressPool, tenant: Tenant | None):
    """Tenant subnets inside the pool that are not of ``tenant``'s subtree (all of them for None)."""
    net = pool.ip_network
    subnets = Subnet.objects.filter(tenant__isnull=False)
    if tenant is not None:
        subnets = subnets.exclude(tenant__in=_subtree(tenant))
    return [s for s in subnets.only("cidr", "tenant_id") if s.ip_network.overlaps(net)]


def address_pool_assign(*, actor: User | None, pool: AddressPool, tenant: Tenant | None) -> AddressPool:
    """Give the pool to one tenant (``None`` takes it back). Refused while subnets of another tenant lie in it."""
    _require_system_admin(actor)
    with transaction.atomic():
        pool = AddressPool.objects.locked(pool.pk)
        foreign = _foreign_subnets(pool, tenant)
        if foreign:
            raise Conflict(
                _("地址池中仍有其他租户的子网（%(cidr)s），不能分配或收回。") % {"cidr": foreign[0].cidr},
                code=NetworkError.ADDRESS_POOL_USED,
                detail={"subnet": foreign[0].pk},
            )
        previous = pool.tenant
        pool.tenant = tenant
        pool.save(update_fields=["tenant"])
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=pool,
            tenant=tenant or previous,
            detail={"op": "address_pool_assigned", "name": pool.name, "tenant": tenant.slug if tenant else None},
        )
    return pool


def address_pool_delete(*, actor: User | None, pool: AddressPool) -> None:
    _require_system_admin(actor)
    with transaction.atomic():
        pool = AddressPool.objects.locked(pool.pk)
        if pool.subnets.exists():
            raise Conflict(_("地址池中仍有子网，不能删除。"), code=NetworkError.ADDRESS_POOL_USED)
        event_record(
            action=Action.NETWORK_CHANGED,
            actor=actor,
            target=pool,
            detail={"op": "address_pool_deleted", "name": pool.name, "cidr": pool.cidr},
        )
        pool.delete()


def pool_for_subnet(*, tenant: Tenant | None, cidr: str, platform: bool) -> AddressPool | None:
    """The pool a tenant subnet of ``cidr`` comes from, locked; refusals for what the tenant may not take.

    A tenant admin (``platform`` False) must stay inside a pool of the tenant or a tenant above it,
    no larger than the pool allows. Nobody, the system admin included, puts a tenant subnet into
    another tenant's pool. The caller checks overlaps with the pool's other subnets under the lock.
    """
    if tenant is None:
        return None
    from network.selectors import address_pools_of_tenant

    net = ipaddress.IPv4Network(cidr)
    usable = {p.pk for p in address_pools_of_tenant(tenant)}
    touching = [p for p in AddressPool.objects.all() if p.ip_network.overlaps(net)]
    for pool in touching:
        if pool.pk not in usable:
            raise Conflict(
                _("网段 %(cidr)s 与不属于本租户的地址池重叠。") % {"cidr": cidr},
                code=NetworkError.CIDR_OUTSIDE_POOLS,
                detail={"field": "cidr"},
            )
    pool = next((p for p in touching if net.subnet_of(p.ip_network)), None)
    if pool is None:
        if platform and not touching:
            return None
        raise InvalidInput(
            _("网段 %(cidr)s 不在分配给本租户的地址池内。") % {"cidr": cidr},
            code=NetworkError.CIDR_OUTSIDE_POOLS,
            detail={"field": "cidr", "pools": [str(p.ip_network) for p in address_pools_of_tenant(tenant)]},
        )
    if net.prefixlen < pool.min_prefixlen:
        raise InvalidInput(
            _("子网不能大于 /%(max)s（地址池“%(name)s”的上限）。") % {"max": pool.min_prefixlen, "name": pool.name},
            code=NetworkError.CIDR_TOO_LARGE,
            detail={"field": "cidr", "min_prefixlen": pool.min_prefixlen},
        )
    return AddressPool.objects.locked(pool.pk)


def check_pool_overlap(pool: AddressPool | None, cidr: str) -> None:
    """No two subnets of one pool overlap, whichever tenants of the subtree they belong to."""
    if pool is None:
        return
    net = ipaddress.IPv4Network(cidr)
    for other in Subnet.objects.filter(pool=pool).only("cidr"):
        if net.overlaps(other.ip_network):
            raise Conflict(
                _("网段 %(new)s 与已有网段 %(old)s 重叠。") % {"new": cidr, "old": other.cidr},
                code=NetworkError.CIDR_OVERLAP,
                detail={"cidr": cidr, "overlaps": other.cidr, "subnet": other.pk},
            )

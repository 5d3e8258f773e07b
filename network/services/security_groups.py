"""Security groups and their rules; compute turns them into each desktop's filter after commit."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput, NotFound
from network import hooks, rules
from network.errors import NetworkError
from network.models import Address, SecurityGroup, SecurityGroupRule

if TYPE_CHECKING:
    from tenants.models import Tenant, User


DEFAULT_GROUP_NAME = "default"


def campus_cidrs() -> list[str]:
    return list(getattr(settings, "NETWORK_CAMPUS_CIDRS", ["10.0.0.0/8", "172.16.0.0/12"]))


def _default_rules() -> list[dict]:
    """What a lab needs: RDP and SSH (and ping) from the campus, everything outbound."""
    result = []
    for cidr in campus_cidrs():
        result.append({"direction": "in", "protocol": "tcp", "port_min": 3389, "port_max": 3389, "remote_cidr": cidr})
        result.append({"direction": "in", "protocol": "tcp", "port_min": 22, "port_max": 22, "remote_cidr": cidr})
        result.append({"direction": "in", "protocol": "icmp", "remote_cidr": cidr})
    result.append({"direction": "out", "protocol": "all"})
    return result


def security_group_default_ensure(*, tenant: Tenant) -> SecurityGroup:
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


def security_group_create(*, actor: User | None, tenant: Tenant, name: str, description: str = "") -> SecurityGroup:
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


def security_group_delete(*, actor: User | None, group: SecurityGroup) -> None:
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


def _rule_ports(protocol: str, port_min, port_max) -> tuple[int | None, int | None]:
    """The rule's port range as integers (one port: both ends the same), or (None, None) for any."""
    if port_min in ("", None):
        if port_max not in ("", None):
            raise InvalidInput(_("请填写起始端口。"), code=NetworkError.RULE_PORT_RANGE_INVALID)
        return None, None
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
    return port_min, port_max


def _rule_remote(group: SecurityGroup, remote_cidr: str, remote_group) -> str:
    """The rule's remote network, normalised; a remote group must be of the same tenant."""
    remote_cidr = (remote_cidr or "").strip()
    if remote_cidr and remote_group is not None:
        raise InvalidInput(_("远端网段和远端安全组只能二选一。"), code=NetworkError.RULE_REMOTE_INVALID)
    if remote_group is not None and remote_group.tenant_id != group.tenant_id:
        raise NotFound(_("远端安全组不存在。"), code=NetworkError.SECURITY_GROUP_NOT_FOUND)
    if not remote_cidr:
        return ""
    try:
        return str(ipaddress.IPv4Network(remote_cidr, strict=False))
    except ValueError as exc:
        raise InvalidInput(_("远端网段无效。"), code=NetworkError.RULE_REMOTE_INVALID) from exc


def _validate_rule(
    *, group: SecurityGroup, direction: str, protocol: str, port_min, port_max, remote_cidr: str, remote_group
) -> dict:
    if direction not in SecurityGroupRule.Direction.values:
        raise InvalidInput(_("方向须为 in 或 out。"), code=NetworkError.RULE_DIRECTION_INVALID)
    if protocol not in SecurityGroupRule.Protocol.values:
        raise InvalidInput(_("协议须为 tcp、udp、icmp 或 all。"), code=NetworkError.RULE_PROTOCOL_INVALID)
    port_min, port_max = _rule_ports(protocol, port_min, port_max)
    return {
        "direction": direction,
        "protocol": protocol,
        "port_min": port_min,
        "port_max": port_max,
        "remote_cidr": _rule_remote(group, remote_cidr, remote_group),
        "remote_group": remote_group,
    }


def _group_changed(group: SecurityGroup) -> None:
    SecurityGroup.objects.filter(pk=group.pk).update(revision=group.revision + 1)
    hooks.fire_on_commit("security_group_changed", group_id=group.pk)


def rule_add(
    *,
    actor: User | None,
    group: SecurityGroup,
    direction: str,
    protocol: str = "tcp",
    port_min: int | str | None = None,
    port_max: int | str | None = None,
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


def rule_delete(*, actor: User | None, rule: SecurityGroupRule) -> None:
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


def nic_security_group_set(*, actor: User | None, address: Address, group: SecurityGroup) -> Address:
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

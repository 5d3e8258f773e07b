"""Writes of the tenants app. Each runs in one transaction and records its audit event."""

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, InvalidInput
from tenants.models import Membership, PlatformAssignment, Tenant, User
from tenants.roles import PlatformRole, TenantRole


def tenant_create(*, actor, slug: str, name_zh: str, name_en: str = "", kind: str, parent: Tenant | None) -> Tenant:
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(_("标识“%(slug)s”已被使用。") % {"slug": slug}, code="tenant_slug_taken")
    with transaction.atomic():
        tenant = Tenant(slug=slug, name_zh=name_zh, name_en=name_en, kind=kind, parent=parent)
        tenant.path = f"{parent.path if parent else '/'}{slug}/"
        tenant.save()
        event_record(action=Action.TENANT_CREATED, actor=actor, target=tenant, tenant=tenant)
    return tenant


def membership_grant(*, actor, user: User, tenant: Tenant, role: str) -> Membership:
    if role not in TenantRole.values:
        raise InvalidInput(_("未知角色：%(role)s") % {"role": role}, code="unknown_role")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, tenant=tenant, role=role)
        if created:
            event_record(action=Action.ROLE_GRANTED, actor=actor, target=user, tenant=tenant, detail={"role": role})
    return membership


def platform_role_grant(*, actor, user: User, role: str) -> PlatformAssignment:
    """Give one of the three platform roles. 三员分立: an account holds at most one."""
    if role not in PlatformRole.values:
        raise InvalidInput(_("未知平台角色：%(role)s") % {"role": role}, code="unknown_role")
    existing = PlatformAssignment.objects.filter(user=user).first()
    if existing and existing.role == role:
        return existing
    if existing:
        raise Conflict(
            _("三员分立：%(user)s 已是%(role)s，不能再兼任其他平台角色。")
            % {"user": user.username, "role": PlatformRole(existing.role).label},
            code="platform_roles_separated",
        )
    try:
        with transaction.atomic():
            assignment = PlatformAssignment.objects.create(user=user, role=role)
            event_record(action=Action.ROLE_GRANTED, actor=actor, target=user, detail={"platform_role": role})
    except IntegrityError as exc:  # a concurrent grant won the race; the unique key refused this one
        raise Conflict(_("三员分立：该账号已有平台角色。"), code="platform_roles_separated") from exc
    return assignment

"""Matching a campus identity to a portal account, and provisioning it: the one writer of sign-in links.

By number, never by display name: the roster's student number (or the staff number) is the
key. A link (source, subject) once made is used from then on. A number that matches two
accounts is refused and reported to the tenant admins of those accounts, never merged.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import ServiceError
from tenants import services as tenant_services
from tenants.identity.errors import ErrorCode
from tenants.identity.identity import CampusIdentity, IdentityRefused
from tenants.identity.models import AccountState, ExternalIdentity, IdentityConflict, TenantDirectory
from tenants.models import Membership, RosterEntry, Tenant, User
from tenants.roles import TenantRole

log = logging.getLogger("tenants.identity")


@dataclass(frozen=True)
class _Match:
    user: User | None
    candidates: tuple[User, ...] = ()


def _candidates(number: str) -> list[User]:
    """Accounts that carry `number`: on the account, on a roster entry, or on another source's link."""
    ids = set(User.objects.filter(student_number=number).values_list("pk", flat=True))
    ids |= set(RosterEntry.objects.filter(student_number=number).values_list("user_id", flat=True))
    ids |= set(ExternalIdentity.objects.filter(number=number).values_list("user_id", flat=True))
    return list(User.objects.filter(pk__in=ids).order_by("pk"))


def _tenants_of(users) -> list[Tenant]:
    ids = Membership.objects.filter(user__in=users).values_list("tenant_id", flat=True).distinct()
    return list(Tenant.objects.filter(pk__in=ids))


def _conflict_report(identity: CampusIdentity, users: list[User]) -> None:
    """Keep the conflict for the tenant admins' account page and the audit log (its own transaction)."""
    usernames = [u.username for u in users]
    tenants = _tenants_of(users) or [None]
    with transaction.atomic():
        for tenant in tenants:
            IdentityConflict.objects.create(
                source=identity.source,
                subject=identity.subject,
                number=identity.number,
                tenant=tenant,
                usernames=usernames,
            )
            event_record(
                action=Action.IDENTITY_CONFLICT,
                actor_username=identity.subject,
                object_type="identity.externalidentity",
                object_name=f"{identity.source}:{identity.subject}",
                tenant=tenant,
                result="failure",
                reason="number matches several accounts",
                detail={"source": identity.source, "number": identity.number, "accounts": usernames},
            )
    log.warning("campus identity %s (%s) matches %s: refused", identity.subject, identity.number, usernames)


def _new_username(identity: CampusIdentity) -> str:
    username = identity.subject.lower()[:150]
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError as exc:
        raise IdentityRefused(
            _("统一身份账号“%(name)s”不能用作用户名，请联系信息中心。") % {"name": identity.subject},
            code=ErrorCode.INVALID_USERNAME,
        ) from exc
    return username


def _place(user: User, identity: CampusIdentity) -> list[str]:
    """Roles a new account gets from the directory: its department's tenant (staff), its groups."""
    granted = []
    if identity.staff and identity.department:
        for directory in TenantDirectory.objects.filter(place_new_staff=True, tenant__is_active=True).select_related(
            "tenant"
        ):
            if identity.department in directory.codes():
                tenant_services.membership_grant(
                    actor=None, user=user, tenant=directory.tenant, role=directory.staff_role
                )
                granted.append(f"{directory.tenant.slug}:{directory.staff_role}")
    return granted


def _group_roles(user: User, identity: CampusIdentity) -> list[str]:
    """DIRECTORY_GROUP_ROLES: {"cs-teachers": "cs:teacher"}; granted at every sign-in, never taken back here."""
    granted = []
    for group, target in (getattr(settings, "DIRECTORY_GROUP_ROLES", {}) or {}).items():
        if group not in identity.groups:
            continue
        slug, _sep, role = str(target).partition(":")
        tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
        if tenant is None or role not in TenantRole.values:
            log.warning("DIRECTORY_GROUP_ROLES: %s -> %s names no active tenant/role", group, target)
            continue
        if Membership.objects.filter(user=user, tenant=tenant, role=role).exists():
            continue
        try:
            tenant_services.membership_grant(actor=None, user=user, tenant=tenant, role=role)
        except ServiceError as exc:  # a platform admin holds no tenant role (三员分立)
            log.warning("group %s: %s not granted %s: %s", group, user.username, target, exc.message)
            continue
        granted.append(f"{slug}:{role}")
    return granted


def _link(user: User, identity: CampusIdentity, *, created: bool) -> None:
    ExternalIdentity.objects.create(
        user=user, source=identity.source, subject=identity.subject, number=identity.number, last_seen_at=timezone.now()
    )
    state, _new = AccountState.objects.get_or_create(user=user)
    roster_made = not created and not user.has_usable_password() and user.last_login is None
    state.activated_at = state.activated_at or timezone.now()
    state.department = identity.department
    state.save(update_fields=["activated_at", "department"])
    changed = []
    for field, value in (
        ("display_name", identity.name),
        ("email", identity.email),
        ("student_number", identity.number),
    ):
        if value and not getattr(user, field):
            setattr(user, field, value)
            changed.append(field)
    if changed:
        user.save(update_fields=changed)
    event_record(
        action=Action.ACCOUNT_ACTIVATED if roster_made else Action.IDENTITY_LINKED,
        actor=None,
        target=user,
        detail={"source": identity.source, "subject": identity.subject, "number": identity.number, "created": created},
    )


def _create(identity: CampusIdentity) -> User:
    username = _new_username(identity)
    if User.objects.filter(username=username).exists():
        # A local account of that name that carries no number: never merged by name.
        log.warning("campus identity %s: username %s is taken by another account", identity.subject, username)
        raise IdentityRefused(
            _("已有同名的本地账号“%(name)s”，无法自动关联。请联系院系管理员。") % {"name": username},
            code=ErrorCode.USERNAME_TAKEN,
        )
    user = User.objects.create(
        username=username,
        display_name=identity.name,
        email=identity.email,
        student_number=identity.number,
        password=make_password(None),
    )
    event_record(
        action=Action.ACCOUNT_CREATED,
        actor=None,
        target=user,
        detail={"source": identity.source, "subject": identity.subject, "number": identity.number},
    )
    return user


def _decide(identity: CampusIdentity) -> _Match:
    link = ExternalIdentity.objects.filter(source=identity.source, subject=identity.subject).select_related("user")
    link = link.first()
    if link is not None:
        if link.number != identity.number:
            return _Match(None, (link.user, *_candidates(identity.number)))
        return _Match(link.user)
    candidates = _candidates(identity.number)
    if len(candidates) > 1:
        return _Match(None, tuple(candidates))
    return _Match(candidates[0] if candidates else None)


def identity_sign_in(*, identity: CampusIdentity) -> User:
    """The portal account of `identity`, linked, activated or created; raises IdentityRefused."""
    match = _decide(identity)
    if match.candidates:
        _conflict_report(identity, list(dict.fromkeys(match.candidates)))
        raise IdentityRefused(
            _("您的学号/工号对应多个门户账号，已通知院系管理员处理。"), code=ErrorCode.IDENTITY_CONFLICT
        )
    try:
        with transaction.atomic():
            user = match.user
            linked = ExternalIdentity.objects.filter(source=identity.source, subject=identity.subject).exists()
            granted = []
            if user is None:
                user = _create(identity)
                _link(user, identity, created=True)
                granted += _place(user, identity)
            elif not linked:
                _link(user, identity, created=False)
            else:
                ExternalIdentity.objects.filter(source=identity.source, subject=identity.subject).update(
                    last_seen_at=timezone.now()
                )
            granted += _group_roles(user, identity)
    except IntegrityError:
        # Two first sign-ins of one person at once: the other made the link; use it.
        link = ExternalIdentity.objects.filter(source=identity.source, subject=identity.subject).first()
        if link is None:
            raise
        return link.user
    if granted:
        log.info("campus identity %s placed: %s", identity.subject, granted)
    return user

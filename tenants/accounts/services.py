"""Writes of account management: create, disable, re-enable, reset a password, service accounts,
staff import, placement rules. One transaction each, the audit event inside it.

Who may: a tenant admin for the accounts of their tenant's subtree (never a platform admin's
account); the security admin for every account, the local-password permission, service
accounts and the three platform roles (those are tenants.services.platform_role_grant/revoke).
"""

from django.contrib.auth import password_validation
from django.contrib.auth.hashers import make_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput
from common.errors import ErrorCode as CommonError
from tenants import permissions
from tenants.identity.errors import ErrorCode
from tenants.identity.models import AccountState, TenantDirectory
from tenants.identity.tokens import service_token_issue, tokens_revoke
from tenants.membership import import_refusals
from tenants.models import Membership, PlatformAssignment, RosterEntry, Tenant, User
from tenants.roles import PlatformRole, TenantRole


def can_manage_account(actor, user: User) -> bool:
    """The security admin: anyone. A tenant admin: accounts that hold a role under their tenants, and
    no platform admin (三员分立: a department never manages the platform's administrators)."""
    if actor is None or permissions.is_platform(actor, PlatformRole.SECURITY_ADMIN):
        return True
    if PlatformAssignment.objects.filter(user=user).exists():
        return False
    tenants = Tenant.objects.filter(memberships__user=user).distinct()
    return any(permissions.manages_tenant(actor, tenant) for tenant in tenants)


def _require_manage(actor, user: User) -> None:
    if not can_manage_account(actor, user):
        raise Forbidden(_("您不能管理该账号。"), code=ErrorCode.ACCOUNT_FORBIDDEN)


def _require_security_admin(actor, message: str) -> None:
    if actor is not None and not permissions.is_platform(actor, PlatformRole.SECURITY_ADMIN):
        raise Forbidden(message, code=ErrorCode.ACCOUNT_FORBIDDEN)


def _check_username(username: str) -> str:
    username = (username or "").strip()
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError as exc:
        raise InvalidInput(_("用户名只能包含字母、数字和 @/./+/-/_。"), code=ErrorCode.INVALID_USERNAME) from exc
    if not username or len(username) > 150:
        raise InvalidInput(_("用户名不能为空，且不超过 150 个字符。"), code=ErrorCode.INVALID_USERNAME)
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(_("用户名“%(name)s”已被使用。") % {"name": username}, code=ErrorCode.USERNAME_TAKEN)
    return username


def _validated_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput(
            _("密码不符合安全策略。"), code=ErrorCode.WEAK_PASSWORD, detail={"password": list(exc.messages)}
        ) from exc


def _mark_must_change(user: User) -> None:
    state, _created = AccountState.objects.get_or_create(user=user)
    state.reset_password_hash = user.password
    state.save(update_fields=["reset_password_hash"])


def account_create(
    *,
    actor,
    tenant: Tenant,
    username: str,
    display_name: str,
    role: str,
    password: str,
    number: str = "",
    email: str = "",
) -> User:
    """A local account in `tenant` with `role`; its first sign-in must change the password."""
    if not (permissions.is_platform(actor, PlatformRole.SECURITY_ADMIN) or permissions.manages_tenant(actor, tenant)):
        raise Forbidden(_("您不能在该租户中创建账号。"), code=ErrorCode.ACCOUNT_FORBIDDEN)
    if role not in TenantRole.values:
        raise InvalidInput(_("未知角色：%(role)s") % {"role": role}, code=ErrorCode.INVALID_ROLE)
    username = _check_username(username)
    user = User(username=username, display_name=(display_name or "").strip()[:150], student_number=number, email=email)
    _validated_password(password, user)
    try:
        with transaction.atomic():
            user.set_password(password)
            user.save()
            Membership.objects.create(user=user, tenant=tenant, role=role)
            _mark_must_change(user)
            event_record(action=Action.ACCOUNT_CREATED, actor=actor, target=user, tenant=tenant, detail={"role": role})
    except IntegrityError as exc:
        raise Conflict(_("用户名“%(name)s”已被使用。") % {"name": username}, code=ErrorCode.USERNAME_TAKEN) from exc
    return user


def account_set_active(*, actor, user: User, active: bool) -> User:
    """Disable (sign-in refused at once, API tokens deleted) or re-enable an account."""
    _require_manage(actor, user)
    if actor is not None and user.pk == actor.pk and not active:
        raise Conflict(_("不能停用自己的账号。"), code=ErrorCode.CANNOT_DISABLE_SELF)
    if user.is_active == active:
        return user
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        if not active:
            tokens_revoke(user=user, actor=actor, reason="account disabled")
        event_record(action=Action.ACCOUNT_ENABLED if active else Action.ACCOUNT_DISABLED, actor=actor, target=user)
    return user


def account_password_reset(*, actor, user: User, new_password: str) -> None:
    """Set a local password under the policy; the person must change it at their next sign-in."""
    _require_manage(actor, user)
    _validated_password(new_password, user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save()  # the history validator keeps the hash (audit.password_validation)
        _mark_must_change(user)
        tokens_revoke(user=user, actor=actor, reason="password reset")
        event_record(action=Action.PASSWORD_RESET, actor=actor, target=user)


def account_local_password_set(*, actor, user: User, allowed: bool) -> AccountState:
    """The security admin lets an account linked to a campus identity keep its local password (or not)."""
    _require_security_admin(actor, _("只有安全管理员可以允许统一身份账号使用本地密码。"))
    with transaction.atomic():
        state, _created = AccountState.objects.get_or_create(user=user)
        if state.local_password_allowed != allowed:
            state.local_password_allowed = allowed
            state.save(update_fields=["local_password_allowed"])
            event_record(action=Action.LOCAL_PASSWORD_CHANGED, actor=actor, target=user, detail={"allowed": allowed})
    return state


def service_account_create(
    *, actor, username: str, display_name: str, tenant: Tenant, role: str, purpose: str
) -> tuple[User, str]:
    """An account for scripts: no password, one API token (shown once), a role in one tenant."""
    _require_security_admin(actor, _("只有安全管理员可以创建服务账号。"))
    if role not in (TenantRole.TEACHER, TenantRole.FINANCE, TenantRole.AUDITOR):
        raise InvalidInput(_("服务账号只能担任教师、财务或审计员角色。"), code=ErrorCode.INVALID_ROLE)
    username = _check_username(username)
    with transaction.atomic():
        user = User.objects.create(
            username=username, display_name=(display_name or username)[:150], password=make_password(None)
        )
        AccountState.objects.create(user=user, kind=AccountState.Kind.SERVICE, purpose=(purpose or "")[:200])
        Membership.objects.create(user=user, tenant=tenant, role=role)
        _token, key = service_token_issue(actor=actor, user=user)
        event_record(
            action=Action.SERVICE_ACCOUNT_CREATED,
            actor=actor,
            target=user,
            tenant=tenant,
            detail={"role": role, "purpose": purpose},
        )
    return user, key


def _accounts_by_number(numbers: list[str]) -> dict[str, set[int]]:
    """Number -> ids of the accounts that have it, as their own number or on a roster."""
    by_number: dict[str, set[int]] = {}
    for pk, number in User.objects.filter(student_number__in=numbers).values_list("pk", "student_number"):
        by_number.setdefault(number, set()).add(pk)
    for user_id, number in RosterEntry.objects.filter(student_number__in=numbers).values_list(
        "user_id", "student_number"
    ):
        by_number.setdefault(number, set()).add(user_id)
    return by_number


def _staff_import_problems(
    rows: list[tuple[int, str, str]], by_number: dict[str, set[int]], refused: dict[int, str]
) -> list[dict]:
    """Each line that cannot be imported, with why: a number of several accounts or of an account the
    import may not touch (``refused``: id -> reason), or a new account whose username (the number)
    somebody else has."""
    errors = []
    for line, number, _name in rows:
        ids = by_number.get(number, set())
        if len(ids) > 1:
            errors.append({"line": line, "student_number": number, "message": _("工号对应多个账号，请先处理重复账号")})
        elif ids & refused.keys():
            errors.append({"line": line, "student_number": number, "message": refused[next(iter(ids))]})
    usernames = [number.lower() for _line, number, _name in rows]
    taken = set(User.objects.filter(username__in=usernames).values_list("username", flat=True))
    for line, number, _name in rows:
        if not by_number.get(number) and number.lower() in taken:
            errors.append({"line": line, "student_number": number, "message": _("用户名已被其他账号使用")})
    return errors


def staff_import(*, actor, tenant: Tenant, rows: list[tuple[int, str, str]], role: str = TenantRole.TEACHER) -> dict:
    """Staff (工号, 姓名) from a parsed CSV/XLSX, all or nothing: accounts by number, created without a
    password (they sign in through the campus), given `role` in `tenant`."""
    if not (permissions.is_platform(actor, PlatformRole.SECURITY_ADMIN) or permissions.manages_tenant(actor, tenant)):
        raise Forbidden(_("您不能在该租户中导入教职工。"), code=ErrorCode.ACCOUNT_FORBIDDEN)
    if role not in TenantRole.values:
        raise InvalidInput(_("未知角色：%(role)s") % {"role": role}, code=ErrorCode.INVALID_ROLE)
    by_number = _accounts_by_number([number for _line, number, _name in rows])
    # Another tenant's or a platform admin's account, a self-grant, an auditor who is admin: tenants.membership.
    refused = import_refusals(actor=actor, tenant=tenant, role=role, user_ids=set().union(*by_number.values()))
    errors = _staff_import_problems(rows, by_number, refused)
    if errors:
        message = ngettext("有 %(n)s 行有误，未导入任何人。", "有 %(n)s 行有误，未导入任何人。", len(errors)) % {
            "n": len(errors)
        }
        raise InvalidInput(message, code=ErrorCode.STAFF_IMPORT_INVALID, detail={"errors": errors})
    counts = {"created_accounts": 0, "granted": 0, "unchanged": 0}
    unusable = make_password(None)
    with transaction.atomic():
        for _line, number, name in rows:
            ids = by_number.get(number)
            if ids:
                user = User.objects.get(pk=next(iter(ids)))
            else:
                user = User.objects.create(
                    username=number.lower(), display_name=name, student_number=number, password=unusable
                )
                counts["created_accounts"] += 1
            _membership, created = Membership.objects.get_or_create(user=user, tenant=tenant, role=role)
            counts["granted" if created else "unchanged"] += 1
        event_record(
            action=Action.STAFF_IMPORTED, actor=actor, target=tenant, tenant=tenant, detail={**counts, "role": role}
        )
    return counts


def tenant_directory_set(
    *, actor, tenant: Tenant, departments: str, place_new_staff: bool, staff_role: str = TenantRole.TEACHER
) -> TenantDirectory:
    """Which directory departments are this tenant, and whether their new staff join it at first sign-in."""
    if not (permissions.is_platform(actor, PlatformRole.SECURITY_ADMIN) or permissions.manages_tenant(actor, tenant)):
        raise Forbidden(_("您不能修改该租户的目录对应。"), code=ErrorCode.DIRECTORY_SETTINGS_FORBIDDEN)
    if staff_role not in (TenantRole.TEACHER, TenantRole.FINANCE, TenantRole.AUDITOR):
        raise InvalidInput(_("新教职工只能自动成为教师、财务或审计员。"), code=ErrorCode.INVALID_ROLE)
    codes = ",".join(sorted({c.strip().lower() for c in (departments or "").split(",") if c.strip()}))
    if len(codes) > 255:
        raise InvalidInput(_("院系代码过长。"), code=CommonError.INVALID)
    with transaction.atomic():
        directory, _created = TenantDirectory.objects.get_or_create(tenant=tenant)
        before = {
            "departments": directory.departments,
            "place_new_staff": directory.place_new_staff,
            "staff_role": directory.staff_role,
        }
        directory.departments, directory.place_new_staff, directory.staff_role = codes, place_new_staff, staff_role
        directory.save()
        after = {"departments": codes, "place_new_staff": place_new_staff, "staff_role": staff_role}
        event_record(
            action=Action.DIRECTORY_CHANGED,
            actor=actor,
            target=tenant,
            tenant=tenant,
            detail={k: [before[k], after[k]] for k in after if before[k] != after[k]},
        )
    return directory

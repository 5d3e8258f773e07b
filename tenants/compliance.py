"""What the audit app needs to know about people: roles, audit scope, and the 等保 checks on accounts.

Registered from TenantsConfig.ready(); audit imports nothing of tenants (STYLE.md).
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.compliance import AC, AM, MANUAL, SEC, SM, Check, Status, register_checks, second_factor_coverage, verdict
from tenants.models import Membership, PlatformAssignment, User
from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import platform_role_of, roles_of, tenants_with_role

DEFAULT_USERNAMES = ("admin", "root", "administrator", "test", "guest", "sysadmin", "secadmin", "auditadmin")
DEFAULT_PASSWORDS = ("admin", "123456", "password", "Admin@123")
UNUSED_DAYS = 90


def audit_scope(user) -> set[str] | None:
    """The audit admin reads the whole platform; a tenant auditor their tenants' subtrees."""
    if platform_role_of(user) == PlatformRole.AUDIT_ADMIN:
        return None
    return set(tenants_with_role(user, TenantRole.AUDITOR).values_list("slug", flat=True))


def privileged_users():
    """Accounts that must use a second factor: platform admins, finance and auditors."""
    return (
        User.objects.filter(is_active=True)
        .filter(
            Q(platform_role__isnull=False)
            | Q(memberships__role__in=[TenantRole.FINANCE, TenantRole.AUDITOR], memberships__tenant__is_active=True)
        )
        .distinct()
        .order_by("username")
    )


# --- 等保 checks on accounts -------------------------------------------------------------------


def accounts_have_roles(level: int) -> tuple[Status, str]:
    active = User.objects.filter(is_active=True)
    without = active.exclude(memberships__isnull=False).exclude(platform_role__isnull=False).exclude(is_superuser=True)
    n = without.count()
    evidence = _("启用账号 %(total)d 个，未分配任何角色的 %(n)d 个。") % {"total": active.count(), "n": n}
    return verdict(n == 0), evidence


def default_accounts(level: int) -> tuple[Status, str]:
    """Accounts with well-known names or demo accounts that still accept a default password."""
    passwords = [*DEFAULT_PASSWORDS, settings.DEMO_PASSWORD]
    candidates = User.objects.filter(is_active=True).filter(
        Q(username__in=DEFAULT_USERNAMES) | Q(username__in=_demo_usernames())
    )
    weak, verdicts = [], {}
    for user in candidates.only("username", "password")[:60]:
        # Hashing is slow by design; accounts seeded together share one hash, checked once.
        if user.password not in verdicts:
            verdicts[user.password] = any(check_password(password, user.password) for password in passwords)
        if verdicts[user.password]:
            weak.append(user.username)
    evidence = _("核查默认/演示账号 %(n)d 个，仍使用默认口令的 %(w)d 个%(names)s。") % {
        "n": candidates.count(),
        "w": len(weak),
        "names": (": " + ", ".join(weak[:5]) + ("…" if len(weak) > 5 else "")) if weak else "",
    }
    return verdict(not weak, partly=False), evidence


def _demo_usernames() -> list[str]:
    from tenants.demo import PLATFORM_ACCOUNTS, TENANT_ACCOUNTS

    return [row[0] for row in PLATFORM_ACCOUNTS] + [row[0] for row in TENANT_ACCOUNTS]


def unused_accounts(level: int) -> tuple[Status, str]:
    cutoff = timezone.now() - timedelta(days=UNUSED_DAYS)
    stale = User.objects.filter(is_active=True).filter(
        Q(last_login__lt=cutoff) | Q(last_login__isnull=True, date_joined__lt=cutoff)
    )
    n = stale.count()
    evidence = _("超过 %(d)d 天未登录的启用账号 %(n)d 个。") % {"d": UNUSED_DAYS, "n": n}
    return verdict(n == 0), evidence


def separation_of_duties(level: int) -> tuple[Status, str]:
    """三员分立: the three roles held by different people, none of whom also works in a tenant."""
    holders = {role: PlatformAssignment.objects.filter(role=role).count() for role in PlatformRole.values}
    doubled = Membership.objects.filter(user__platform_role__isnull=False).values("user").distinct().count()
    missing = [str(PlatformRole(role).label) for role, n in holders.items() if n == 0]
    evidence = _(
        "系统管理员 %(s)d 人、安全管理员 %(x)d 人、审计管理员 %(a)d 人；一个账号最多一个平台角色（数据库唯一约束）；兼任院系角色的平台管理员 %(d)d 人。"  # noqa: E501
    ) % {
        "s": holders[PlatformRole.SYSTEM_ADMIN],
        "x": holders[PlatformRole.SECURITY_ADMIN],
        "a": holders[PlatformRole.AUDIT_ADMIN],
        "d": doubled,
    }
    if missing:
        return Status.NONCONFORM, _("%(evidence)s 缺少：%(missing)s") % {
            "evidence": evidence,
            "missing": "、".join(missing),
        }
    return verdict(doubled == 0), evidence


def platform_admin_check(role: str):
    """The check of one platform role (系统/审计/安全管理): someone holds it, with a second factor."""

    def check(level: int) -> tuple[Status, str]:
        total, covered = second_factor_coverage(role)
        if not total:
            return Status.NONCONFORM, _("未设置%(role)s。") % {"role": PlatformRole(role).label}
        evidence = _("%(role)s %(n)d 人，已绑定动态口令 %(c)d 人；其操作均记入审计日志。") % {
            "role": PlatformRole(role).label,
            "n": total,
            "c": covered,
        }
        return verdict(covered == total), evidence

    return check


# One row per 测评指标, as in audit/checks.py: id, control, clause at each level, check function
# (MANUAL: the security admin records the finding), the indicator as the standard words it, advice.

# fmt: off
CATALOGUE = [
    Check("ac.accounts", AC, {2: "7.1.4.2 a)", 3: "8.1.4.2 a)"}, accounts_have_roles,
          "应对登录的用户分配账户和权限",
          "为每个账号分配角色，停用没有角色的账号。"),
    Check("ac.defaults", AC, {2: "7.1.4.2 b)", 3: "8.1.4.2 b)"}, default_accounts,
          "应重命名或删除默认账户，修改默认账户的默认口令",
          "修改默认/演示账号的口令，或停用这些账号。"),
    Check("ac.unused", AC, {2: "7.1.4.2 c)", 3: "8.1.4.2 c)"}, unused_accounts,
          "应及时删除或停用多余的、过期的账户，避免共享账户的存在",
          "停用超过 90 天未登录的账号。"),
    Check("ac.separation", AC, {2: "7.1.4.2 d)", 3: "8.1.4.2 d)"}, separation_of_duties,
          "应授予管理用户所需的最小权限，实现管理用户的权限分离",
          "三员分立：系统、安全、审计管理员由不同人员担任，且不兼任院系角色。"),
    Check("ac.policy", AC, {3: "8.1.4.2 e)"}, MANUAL,
          "应由授权主体配置访问控制策略，访问控制策略规定主体对客体的访问规则",
          "核对各角色权限矩阵并由安全管理员确认。"),
    Check("ac.granularity", AC, {3: "8.1.4.2 f)"}, MANUAL,
          "访问控制的粒度应达到主体为用户级或进程级，客体为文件、数据库表级",
          "核对对象级授权：每个用户只能访问本租户、本课程或本人的桌面、发票与审计记录。"),
    Check("ac.labels", AC, {3: "8.1.4.2 g)"}, MANUAL,
          "应对重要主体和客体设置安全标记，并控制主体对有安全标记信息资源的访问",
          "如系统处理需标记的重要信息，应在操作系统或数据库层面启用安全标记；否则记录为不适用及其理由。"),
    Check("sm.sysadmin", SM, {2: "7.1.5.1 a)", 3: "8.1.5.1 a)"}, platform_admin_check(PlatformRole.SYSTEM_ADMIN),
          "应对系统管理员进行身份鉴别，只允许其通过特定的命令或操作界面进行系统管理操作，并对这些操作进行审计",
          "系统管理员绑定动态口令。"),
    Check("am.auditadmin", AM, {2: "7.1.5.2 a)", 3: "8.1.5.2 a)"}, platform_admin_check(PlatformRole.AUDIT_ADMIN),
          "应对审计管理员进行身份鉴别，只允许其通过特定的命令或操作界面进行安全审计操作，并对这些操作进行审计",
          "审计管理员绑定动态口令。"),
    Check("sec.secadmin", SEC, {3: "8.1.5.3 a)"}, platform_admin_check(PlatformRole.SECURITY_ADMIN),
          "应对安全管理员进行身份鉴别，只允许其通过特定的命令或操作界面进行安全管理操作，并对这些操作进行审计",
          "安全管理员绑定动态口令。"),
]
# fmt: on


def register() -> None:
    from audit import hooks

    hooks.register_role_resolver(roles_of)
    hooks.register_audit_scope(audit_scope)
    hooks.register_privileged_users(privileged_users)
    register_checks(CATALOGUE)

"""What the audit app needs to know about people: roles, audit scope, and the 等保 checks on accounts.

Registered from TenantsConfig.ready(); audit imports nothing of tenants (STYLE.md).
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

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


def accounts_have_roles(level):
    active = User.objects.filter(is_active=True)
    without = active.exclude(memberships__isnull=False).exclude(platform_role__isnull=False).exclude(is_superuser=True)
    n = without.count()
    evidence = _("启用账号 %(total)d 个，未分配任何角色的 %(n)d 个。") % {"total": active.count(), "n": n}
    return ("conform" if n == 0 else "partial"), evidence


def default_accounts(level):
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
    return ("conform" if not weak else "nonconform"), evidence


def _demo_usernames() -> list[str]:
    from tenants.demo import PLATFORM_ACCOUNTS, TENANT_ACCOUNTS

    return [row[0] for row in PLATFORM_ACCOUNTS] + [row[0] for row in TENANT_ACCOUNTS]


def unused_accounts(level):
    cutoff = timezone.now() - timedelta(days=UNUSED_DAYS)
    stale = User.objects.filter(is_active=True).filter(
        Q(last_login__lt=cutoff) | Q(last_login__isnull=True, date_joined__lt=cutoff)
    )
    n = stale.count()
    evidence = _("超过 %(d)d 天未登录的启用账号 %(n)d 个。") % {"d": UNUSED_DAYS, "n": n}
    return ("conform" if n == 0 else "partial"), evidence


def separation_of_duties(level):
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
        return "nonconform", _("%(evidence)s 缺少：%(missing)s") % {"evidence": evidence, "missing": "、".join(missing)}
    return ("conform" if doubled == 0 else "partial"), evidence


def _role_holder_check(role: str):
    def check(level):
        from audit.security import has_second_factor

        users = list(User.objects.filter(platform_role__role=role, is_active=True))
        if not users:
            return "nonconform", _("未设置%(role)s。") % {"role": PlatformRole(role).label}
        covered = sum(1 for user in users if has_second_factor(user))
        evidence = _("%(role)s %(n)d 人，已绑定动态口令 %(c)d 人；其操作均记入审计日志。") % {
            "role": PlatformRole(role).label,
            "n": len(users),
            "c": covered,
        }
        return ("conform" if covered == len(users) else "partial"), evidence

    return check


def register() -> None:
    from audit import hooks
    from audit.compliance import AREA_COMPUTING, AREA_MANAGEMENT, Check, register_check

    hooks.register_role_resolver(roles_of)
    hooks.register_audit_scope(audit_scope)
    hooks.register_privileged_users(privileged_users)

    C = gettext_lazy
    AC = C("访问控制")
    for check in [
        Check(
            id="ac.accounts",
            area=AREA_COMPUTING,
            control=AC,
            clause={2: "7.1.4.2 a)", 3: "8.1.4.2 a)"},
            order=1,
            indicator=C("应对登录的用户分配账户和权限"),
            advice=C("为每个账号分配角色，停用没有角色的账号。"),
            auto=accounts_have_roles,
        ),
        Check(
            id="ac.defaults",
            area=AREA_COMPUTING,
            control=AC,
            clause={2: "7.1.4.2 b)", 3: "8.1.4.2 b)"},
            order=2,
            indicator=C("应重命名或删除默认账户，修改默认账户的默认口令"),
            advice=C("修改默认/演示账号的口令，或停用这些账号。"),
            auto=default_accounts,
        ),
        Check(
            id="ac.unused",
            area=AREA_COMPUTING,
            control=AC,
            clause={2: "7.1.4.2 c)", 3: "8.1.4.2 c)"},
            order=3,
            indicator=C("应及时删除或停用多余的、过期的账户，避免共享账户的存在"),
            advice=C("停用超过 90 天未登录的账号。"),
            auto=unused_accounts,
        ),
        Check(
            id="ac.separation",
            area=AREA_COMPUTING,
            control=AC,
            clause={2: "7.1.4.2 d)", 3: "8.1.4.2 d)"},
            order=4,
            indicator=C("应授予管理用户所需的最小权限，实现管理用户的权限分离"),
            advice=C("三员分立：系统、安全、审计管理员由不同人员担任，且不兼任院系角色。"),
            auto=separation_of_duties,
        ),
        Check(
            id="ac.policy",
            area=AREA_COMPUTING,
            control=AC,
            clause={3: "8.1.4.2 e)"},
            order=5,
            indicator=C("应由授权主体配置访问控制策略，访问控制策略规定主体对客体的访问规则"),
            advice=C("核对各角色权限矩阵并由安全管理员确认。"),
        ),
        Check(
            id="ac.granularity",
            area=AREA_COMPUTING,
            control=AC,
            clause={3: "8.1.4.2 f)"},
            order=6,
            indicator=C("访问控制的粒度应达到主体为用户级或进程级，客体为文件、数据库表级"),
            advice=C("核对对象级授权：每个用户只能访问本租户、本课程或本人的桌面、发票与审计记录。"),
        ),
        Check(
            id="ac.labels",
            area=AREA_COMPUTING,
            control=AC,
            clause={3: "8.1.4.2 g)"},
            order=7,
            indicator=C("应对重要主体和客体设置安全标记，并控制主体对有安全标记信息资源的访问"),
            advice=C("如系统处理需标记的重要信息，应在操作系统或数据库层面启用安全标记；否则记录为不适用及其理由。"),
        ),
        Check(
            id="sm.sysadmin",
            area=AREA_MANAGEMENT,
            control=C("系统管理"),
            clause={2: "7.1.5.1 a)", 3: "8.1.5.1 a)"},
            indicator=C(
                "应对系统管理员进行身份鉴别，只允许其通过特定的命令或操作界面进行系统管理操作，并对这些操作进行审计"
            ),
            advice=C("系统管理员绑定动态口令。"),
            auto=_role_holder_check(PlatformRole.SYSTEM_ADMIN),
        ),
        Check(
            id="am.auditadmin",
            area=AREA_MANAGEMENT,
            control=C("审计管理"),
            clause={2: "7.1.5.2 a)", 3: "8.1.5.2 a)"},
            order=1,
            indicator=C(
                "应对审计管理员进行身份鉴别，只允许其通过特定的命令或操作界面进行安全审计操作，并对这些操作进行审计"
            ),
            advice=C("审计管理员绑定动态口令。"),
            auto=_role_holder_check(PlatformRole.AUDIT_ADMIN),
        ),
        Check(
            id="sec.secadmin",
            area=AREA_MANAGEMENT,
            control=C("安全管理"),
            clause={3: "8.1.5.3 a)"},
            indicator=C(
                "应对安全管理员进行身份鉴别，只允许其通过特定的命令或操作界面进行安全管理操作，并对这些操作进行审计"
            ),
            advice=C("安全管理员绑定动态口令。"),
            auto=_role_holder_check(PlatformRole.SECURITY_ADMIN),
        ),
    ]:
        register_check(check)

"""等保 checks that every way in (local, CAS, LDAP) is covered: lockout, audit with the source, two factors.

Registered from IdentityConfig.ready() beside tenants' own account checks.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.compliance import IA, Check, Status, register_checks, verdict
from audit.models import AuditEvent
from tenants.identity.models import AccountState, ExternalIdentity


def ways_in() -> list[str]:
    ways = ["local"]
    if settings.CAS_SERVER_URL:
        ways.append("cas")
    if settings.LDAP_SERVER_URI:
        ways.append("ldap")
    return ways


def _transport_problems() -> list[str]:
    problems = []
    if settings.CAS_SERVER_URL and not settings.CAS_SERVER_URL.startswith("https://"):
        problems.append(_("CAS 服务器地址不是 HTTPS"))
    uri = settings.LDAP_SERVER_URI
    if uri and not (uri.startswith("ldaps://") or settings.LDAP_START_TLS):
        problems.append(_("LDAP 未启用 StartTLS 或 LDAPS，口令以明文传输"))
    return problems


def sso_coverage(level: int) -> tuple[Status, str]:
    """Every enabled way in passes the lockout, writes login events with its source, and keeps TOTP."""
    since = timezone.now() - timedelta(days=7)
    by_source = dict(
        AuditEvent.objects.filter(occurred_at__gte=since, action__in=["auth.login", "auth.login_failed"])
        .values_list("detail__source")
        .annotate(n=Count("id"))
    )
    linked_with_password = (
        AccountState.objects.filter(local_password_allowed=True, user__external_identities__isnull=False)
        .distinct()
        .count()
    )
    ways = ways_in()
    evidence = _(
        "登录方式：%(ways)s；各方式均经登录失败锁定（django-axes）并写入带来源的登录审计事件；特权角色经统一身份认证登录后仍须动态口令（CAS 声明多因素时记录其方式）；近 7 天登录事件按来源：%(counts)s；已关联统一身份且被允许本地密码登录的账号 %(n)d 个。"  # noqa: E501
    ) % {
        "ways": "、".join(ways),
        "counts": ", ".join(f"{k or 'local'}={v}" for k, v in sorted(by_source.items(), key=lambda kv: str(kv[0])))
        or "—",
        "n": linked_with_password,
    }
    problems = _transport_problems()
    if not settings.AXES_ENABLED:
        return Status.NONCONFORM, evidence + " " + _("登录失败锁定未启用。")
    if problems:
        return Status.PARTIAL, f"{evidence} {'；'.join(str(p) for p in problems)}"
    return Status.CONFORM, evidence


def linked_accounts(level: int) -> tuple[Status, str]:
    """One identity, one way in: linked accounts do not keep a second (local) password unless allowed."""
    linked = ExternalIdentity.objects.values("user").distinct().count()
    allowed = AccountState.objects.filter(local_password_allowed=True).count()
    evidence = _("已关联统一身份的账号 %(l)d 个，其中经安全管理员允许保留本地密码的 %(a)d 个。") % {
        "l": linked,
        "a": allowed,
    }
    return verdict(allowed == 0), evidence


# fmt: off
CATALOGUE = [
    Check("ia.sso", IA, {2: "7.1.4.1 b)", 3: "8.1.4.1 b)"}, sso_coverage,
          "统一身份认证（CAS/LDAP）与本地账号同样具备登录失败处理、审计与多因素鉴别",
          "CAS 使用 HTTPS，LDAP 启用 StartTLS 或 LDAPS；保持 AXES_ENABLED 与 SECOND_FACTOR_REQUIRED 开启。"),
    Check("ia.sso_local", IA, {3: "8.1.4.1 a)"}, linked_accounts,
          "关联统一身份的账号不保留另一套本地口令（身份标识唯一）",
          "在“账号管理”中撤销不再需要的本地密码登录许可。"),
]
# fmt: on


def register() -> None:
    register_checks(CATALOGUE)

"""The navigation: each entry names the roles that may use it. Apps add their entries here."""

from dataclasses import dataclass

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.translation import gettext_lazy as _

from tenants.roles import PlatformRole, TenantRole

EVERYONE = frozenset({*TenantRole.values, *PlatformRole.values})
BILLING_READERS = frozenset(
    {TenantRole.FINANCE, TenantRole.TENANT_ADMIN, TenantRole.AUDITOR, PlatformRole.SYSTEM_ADMIN}
)

TENANT_READERS = frozenset({TenantRole.TENANT_ADMIN, TenantRole.FINANCE, TenantRole.AUDITOR, PlatformRole.SYSTEM_ADMIN})


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    icon: str
    roles: frozenset
    # Further path prefixes that belong to this entry (the pages reached through its tabs).
    sections: tuple[str, ...] = ()


NAVIGATION: list[NavItem] = [
    NavItem(_("概览"), "dashboard", "speedometer2", EVERYONE),
    NavItem(_("我的桌面"), "classroom:mine", "display", frozenset({TenantRole.STUDENT})),
    # Courses have their own place (not a tab of the requests): the roster, class times and a link
    # to the pool; the pools beside them.
    NavItem(_("我的课程"), "tenants:courses", "journal-bookmark", frozenset({TenantRole.TEACHER})),
    NavItem(
        _("课程桌面池"),
        "classroom:pools",
        "grid-3x3-gap",
        frozenset({TenantRole.TEACHER, TenantRole.TENANT_ADMIN}),
    ),
    # Compute: every desktop a role may see; the system admin's hypervisors, images and flavors.
    NavItem(_("云桌面"), "compute:desktop-list", "pc-display", EVERYONE - {PlatformRole.SECURITY_ADMIN}),
    NavItem(
        _("虚拟化资源"),
        "compute:endpoint-list",
        "hdd-network",
        frozenset({PlatformRole.SYSTEM_ADMIN}),
        sections=("/compute/admin/",),
    ),
    # Network: tenants' networks, addresses and security groups (tenant admins manage, members read).
    NavItem(_("网络"), "network:list", "diagram-3", EVERYONE - {PlatformRole.SECURITY_ADMIN}),
    # Billing: finance, tenant admins, auditors and the system admin read costs and invoices;
    # teachers see the cost of their own courses, students their own usage.
    NavItem(
        _("用量与费用"),
        "billing:usage",
        "graph-up",
        BILLING_READERS | {TenantRole.TEACHER, TenantRole.STUDENT},
        sections=("/billing/",),
    ),
    NavItem(_("账单"), "billing:invoice_list", "receipt", BILLING_READERS),
    # Tenants: the request wizard for teachers; requests and approvals; the tenant pages (tree,
    # members, courses, quotas, policies), which link to each other through their own tabs.
    NavItem(_("申请实验桌面"), "request-wizard", "magic", frozenset({TenantRole.TEACHER})),
    NavItem(_("申请与审批"), "tenants:requests", "check2-square", TENANT_READERS | {TenantRole.TEACHER}),
    NavItem(
        _("院系管理"),
        "tenants:tree",
        "diagram-3",
        TENANT_READERS | {PlatformRole.SECURITY_ADMIN},
        sections=("/tenants/",),
    ),
    # Audit: auditors search the log and make 等保 reports; the security admin edits the policy.
    NavItem(_("审计日志"), "audit:events", "journal-text", frozenset({TenantRole.AUDITOR, PlatformRole.AUDIT_ADMIN})),
    NavItem(
        _("等保自查"),
        "audit:reports",
        "clipboard-check",
        frozenset({TenantRole.AUDITOR, PlatformRole.AUDIT_ADMIN, PlatformRole.SECURITY_ADMIN}),
    ),
    NavItem(
        _("账号管理"), "accounts:list", "people", frozenset({TenantRole.TENANT_ADMIN, PlatformRole.SECURITY_ADMIN})
    ),
    NavItem(_("安全策略"), "audit:policy", "shield-lock", frozenset({PlatformRole.SECURITY_ADMIN})),
    NavItem(_("我的令牌"), "identity:tokens", "key", EVERYONE),
    NavItem(_("账号安全"), "audit:account", "person-lock", EVERYONE),
]


def _match(item: NavItem, url: str, current_path: str) -> int:
    """How long a prefix of the current path this entry claims (0: none); the dashboard only itself."""
    if url == "/":
        return 1 if current_path == "/" else 0
    return max((len(p) for p in (url, *item.sections) if current_path.startswith(p)), default=0)


# Each entry's URL, reversed once per URL configuration and script prefix (not ~20 reverse() a page).
_URLS: dict[tuple, str] = {}


def _url(name: str) -> str:
    key = (settings.ROOT_URLCONF, get_urlconf(), get_script_prefix(), name)
    url = _URLS.get(key)
    if url is None:
        url = _URLS[key] = reverse(name)
    return url


def items_for(roles: set[str], current_path: str) -> list[dict]:
    """The entries the roles may use; exactly one, the longest match of the path, is active."""
    items, best, best_len = [], None, 0
    for item in NAVIGATION:
        if roles & item.roles:
            url = _url(item.url_name)
            entry = {"label": item.label, "url": url, "icon": item.icon, "active": False}
            length = _match(item, url, current_path)
            if length > best_len:
                best, best_len = entry, length
            items.append(entry)
    if best is not None:
        best["active"] = True
    return items

"""Helpers of the browser tests that walk the portal as a role: sign in (with the second factor
where the role needs one), crawl every page reachable by links, and check each page."""

import re
import time
from urllib.parse import urldefrag, urlparse

TOTP_SECRET_HEX = "3132333435363738393031323334353637383930"  # 160 bits

# Links the crawl does not follow: leaving the session, switching language, downloads (checked
# by status only), the Django admin and the API browser.
NOT_VISITED = re.compile(
    r"^/(accounts/logout|i18n/|admin/|api/|static/|media/)|\.(pdf|xlsx|csv|json|jsonl)$|/(pdf|xlsx|csv)/$"
)
NOT_REQUESTED = re.compile(r"^/(accounts/logout|i18n/)")

# Latin words a Chinese page may show as they are: units, protocols, product and format names.
_WORDS = """
KiB MiB GiB TiB KB MB GB TB vCPU vCPUs CPU GPU vGPU mdev IP IPs
IPv4 IPv6 CNY API PDF XLSX CSV JSON VLAN VXLAN DHCP DNS NAT SNAT DNAT TCP
UDP ICMP SSH RDP VNC SPICE URI URL TOTP CAS LDAP SSO HMAC Windows Linux Ubuntu
Debian CentOS vCenter vSphere libvirt KVM QEMU ESXi HTTP HTTPS ID OK UTC CampusCloud English Excel
MAC CIDR QoS ISO qcow2 raw VM VMs Celery Redis MariaDB NVIDIA h min s ms
Mbps Gbps
"""
ALLOWED_WORDS = frozenset(_WORDS.split())
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.@/:+-]*")

# Visible text nodes of the page, without code samples, elements in another language, inputs.
VISIBLE_TEXT_JS = """() => {
  const out = [];
  const skip = (el) => el.closest('code, pre, kbd, samp, script, style, [translate="no"], [data-raw], .font-monospace')
    || (el.closest('[lang]') && !el.closest('[lang]').getAttribute('lang').startsWith('zh'));
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, text = node.nodeValue.trim(), el = node.parentElement;
    if (!text || !el || skip(el)) continue;
    if (!el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    out.push(text);
  }
  for (const el of document.querySelectorAll('[title], [aria-label], [placeholder]')) {
    if (skip(el)) continue;
    for (const a of ['title', 'aria-label', 'placeholder']) if (el.getAttribute(a)) out.push(el.getAttribute(a).trim());
  }
  return out;
}"""


def totp_code(device) -> str:
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def sign_in(page, username: str, password: str):
    """The login form, then the one-time code when the account has a second factor (given one with
    a known secret first when the demo made none)."""
    from audit.security import needs_second_factor, totp_device, totp_install
    from tenants.models import User

    user = User.objects.get(username=username)
    device = None
    if needs_second_factor(user):
        device = totp_device(user) or totp_install(user=user, secret_hex=TOTP_SECRET_HEX)
    page.goto("/accounts/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state("networkidle")
    if device is not None:
        page.get_by_label("动态口令或恢复码").fill(totp_code(device))
        page.get_by_role("button", name="验证").click()
        page.wait_for_load_state("networkidle")
    assert "/accounts/login/" not in page.url and "/otp/" not in page.url, f"{username} could not sign in: {page.url}"
    return page


def known_names() -> set[str]:
    """Names and codes the demo data holds (people, tenants, courses, images, flavors, networks...):
    shown as they are on any page."""
    from django.apps import apps

    names: set[str] = set()
    fields = ("username", "slug", "name", "code", "number", "vm_name", "version", "first_name", "last_name")
    for model in apps.get_models():
        own = [f.name for f in model._meta.concrete_fields if f.name in fields]
        for field in own:
            for value in model.objects.values_list(field, flat=True).distinct()[:2000]:
                if isinstance(value, str) and value:
                    names.update(WORD.findall(value))
                    names.add(value)
    return names


def latin_only(texts: list[str], names: set[str]) -> list[str]:
    """The texts with no Chinese in them and a Latin word that is neither a unit/format, a name or code
    from the data, nor part of an identifier (a word with digits or punctuation in it)."""
    bad = []
    for text in texts:
        if CJK.search(text) or text in names:
            continue
        # Tokens with digits or punctuation are identifiers (addresses, MACs, versions, paths).
        plain = " ".join(t for t in text.split() if not re.search(r"[0-9_@/]|:(?=.)", t))
        for word in WORD.findall(plain):
            core = word.strip(".:/-+")
            if not core or core in ALLOWED_WORDS or core in names or word in names:
                continue
            if re.search(r"[0-9_@/:]", core) or re.fullmatch(r"[a-z0-9.-]+\.[a-z]{2,}", core):
                continue  # identifiers, addresses, versions, file names
            if len(core) == 1:
                continue
            bad.append(text)
            break
    return bad


def same_origin_links(page, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    out = []
    for href in hrefs:
        url, _ = urldefrag(href)
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https") and url.startswith(base):
            out.append(parsed.path + (f"?{parsed.query}" if parsed.query else ""))
    return out

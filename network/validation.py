"""Strict patterns for every string of the network app that reaches a hypervisor: dnsmasq host
entries, libvirt XML (bridges, networks, filters), iptables chains and vCenter port-group names.

Checked at the service, so pages, the API and operator commands all get the same 400 naming the
field. ASCII only: ``str.isalnum`` would let through letters and digits of any script.
"""

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from common.errors import InvalidInput
from network.errors import NetworkError

# RFC 1123 host label: what dnsmasq takes as a host name.
HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A Linux interface name (IFNAMSIZ 16 with the NUL): no dot, slash, colon or space.
BRIDGE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,14}")
# vCenter port groups: "VM Network", "DC0_DVPG0", "lab-120 (vlan)".
PORTGROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()-]{0,79}")
SITE = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
# Names of platform objects (segments, address pools, public pools) that operators script against.
OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_RULES = {
    "hostname": (
        HOSTNAME,
        NetworkError.HOSTNAME_INVALID,
        gettext_noop("字母、数字和 -，最多 63 个字符，不以 - 开头或结尾"),
    ),
    "bridge": (BRIDGE, NetworkError.BRIDGE_INVALID, gettext_noop("字母开头，字母、数字、-、_，最多 15 个字符")),
    "portgroup": (
        PORTGROUP,
        NetworkError.PORTGROUP_INVALID,
        gettext_noop("字母或数字开头，字母、数字、空格、.、_、-、()，最多 80 个字符"),
    ),
    "site": (SITE, NetworkError.SITE_INVALID, gettext_noop("小写字母、数字、-、_，最多 50 个字符")),
    "name": (
        OBJECT_NAME,
        NetworkError.NAME_INVALID,
        gettext_noop("字母或数字开头，字母、数字、.、_、-，最多 64 个字符"),
    ),
}


def checked(field: str, value, *, kind: str | None = None, blank: bool = False) -> str:
    """``value`` stripped, if it matches the pattern of ``kind`` (default: the field's name); else a 400
    whose message and detail name ``field``. ``blank`` lets an empty value through."""
    pattern, code, rule = _RULES[kind or field]
    text = "" if value is None else str(value).strip()
    if blank and not text:
        return ""
    if not pattern.fullmatch(text):
        raise InvalidInput(
            _("字段 %(field)s 的值无效：须为%(rule)s。") % {"field": field, "rule": _(rule)},
            code=code,
            detail={"field": field, "value": text[:100]},
        )
    return text


def hostname_from(value: str) -> str:
    """A host name dnsmasq accepts, made from a desktop's VM name (which may come from an imported
    vCenter VM): anything outside the pattern becomes "-", trimmed to one label."""
    label = re.sub(r"[^A-Za-z0-9-]+", "-", value or "").strip("-")[:63].strip("-")
    return label if HOSTNAME.fullmatch(label) else ""

"""`{% load errors %}{{ text|error_message }}`: a hypervisor's raw error text said in the user's
language (the raw text stays available behind a 详情 toggle, templates/portal/_error.html)."""

import re

from django import template
from django.utils.translation import gettext as _

register = template.Library()

CJK = re.compile(r"[\u3400-\u9fff]")

# (pattern in the driver's text, what it means for the user); the first match wins.
KNOWN = [
    (re.compile(r"not enough free space|no space left|insufficient (free )?space|disk quota", re.I), "space"),
    (re.compile(r"cannot allocate memory|out of memory|insufficient memory|not enough memory", re.I), "memory"),
    (re.compile(r"connection refused|unable to connect|failed to connect|no route to host|unreachable", re.I), "down"),
    (re.compile(r"timed? ?out", re.I), "timeout"),
    (re.compile(r"already exists", re.I), "exists"),
    (re.compile(r"(storage )?volume .*not found|no storage vol|image .*not found", re.I), "image"),
]


def _messages() -> dict:
    return {
        "space": _("存储空间不足：存储池没有足够的空闲空间放下这个桌面的磁盘。"),
        "memory": _("主机内存不足：虚拟化主机没有足够的空闲内存启动这个桌面。"),
        "down": _("无法连接虚拟化主机，请稍后重试或联系管理员。"),
        "timeout": _("虚拟化平台响应超时，请稍后重试。"),
        "exists": _("同名的虚拟机已存在，请联系管理员清理后重试。"),
        "image": _("找不到桌面所需的镜像或磁盘，请联系管理员。"),
    }


@register.filter
def error_message(text: str) -> str:
    """The message in the user's words; text already in Chinese (a service's message) is kept."""
    text = (text or "").strip()
    if not text or CJK.search(text):
        return text
    for pattern, key in KNOWN:
        if pattern.search(text):
            return _messages()[key]
    return _("虚拟化平台报告了错误，详情见下方原始信息。")


@register.filter
def error_is_raw(text: str) -> bool:
    """Whether the text is the driver's own (worth a 详情 toggle)."""
    text = (text or "").strip()
    return bool(text) and not CJK.search(text)

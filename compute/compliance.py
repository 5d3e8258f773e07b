"""compute's entry of the 等保 catalogue: 剩余信息保护 of the desktops' disks, evaluated from what the code does.

What it reports is read from the code that does it, not written beside it: each hypervisor driver states
how a deleted disk's blocks are kept from the next volume (``residual_protection``: libvirt wipes a volume
before deleting it, vCenter's VMFS zeroes the blocks it hands out), and the services' signatures say that a
hand-over resets the system disk and takes the previous owner's data disks off. Registered by
ComputeConfig.ready().
"""

import importlib
import inspect

from django.utils.translation import gettext as _

from audit.compliance import RI, Check, Status, register_checks, verdict
from compute.drivers import DRIVERS
from compute.models import Endpoint

METHODS = {
    "wipe": _("删除前擦除卷（libvirt wipe）"),
    "fresh_allocation": _("存储为新分配的块清零（VMFS）"),
}


def driver_protection(kind: str) -> str:
    """The ``residual_protection`` the driver of this endpoint kind declares ("" if none)."""
    module_name, _sep, class_name = DRIVERS[kind].partition(":")
    driver = getattr(importlib.import_module(module_name, "compute.drivers"), class_name)
    return getattr(driver, "residual_protection", "")


def hand_over_clears() -> bool:
    """Whether a desktop that changes hands is reset and loses the previous owner's data disks."""
    from compute.services.desktops import desktop_hand_over

    return "keep_data_disks" in inspect.signature(desktop_hand_over).parameters


def residual_data(level: int) -> tuple[Status, str]:
    kinds = sorted(set(Endpoint.objects.filter(is_active=True).values_list("kind", flat=True))) or sorted(DRIVERS)
    methods = {kind: driver_protection(kind) for kind in kinds}
    described = "；".join(f"{kind}：{METHODS.get(method, _('未声明清除方式'))}" for kind, method in methods.items())
    evidence = _(
        "桌面和数据盘删除时其存储块被清除（%(methods)s）；桌面转交给他人前重置系统盘，"
        "原使用者的数据盘卸载后保留给本人或擦除删除（按桌面池设置）。"
    ) % {"methods": described}
    met = all(method in METHODS for method in methods.values()) and hand_over_clears()
    return verdict(met, partly=any(method in METHODS for method in methods.values())), evidence


# fmt: off
CATALOGUE = [
    Check("ri.data", RI, {3: "8.1.4.10 b)"}, residual_data,
          "应保证存有敏感数据的存储空间被释放或重新分配前得到完全清除",
          "使用支持擦除（wipe）的存储池或在新分配时清零的存储；桌面转交与删除均经门户进行。"),
]
# fmt: on


def register() -> None:
    register_checks(CATALOGUE)

"""HA fencing: a silent host is powered off through its BMC (IPMI) before any of its desktops restarts elsewhere.

Fencing counts as done only when the BMC reads the power back as off. A host without a BMC, a BMC that
does not answer or refuses, or a power state still on: fencing failed, nothing restarts, and the host
page says so until a later attempt succeeds or an admin clears the host.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _

from compute.drivers import ipmi
from compute.drivers.base import DriverError
from compute.models import Host


class FenceFailed(Exception):
    """Why the host could not be fenced (already translated)."""


def fence(host: Host) -> None:
    """Power the host off through its BMC; returns when the BMC says off, raises FenceFailed otherwise."""
    if not host.bmc_configured:
        raise FenceFailed(_("未配置 BMC（IPMI）地址和账号"))
    access = ipmi.BmcAccess(
        address=host.bmc_address, port=host.bmc_port, username=host.bmc_username, password=host.bmc_password
    )
    try:
        power = ipmi.power_off(access, timeout=settings.HA_IPMI_TIMEOUT)
    except DriverError as exc:
        raise FenceFailed(_("BMC 断电失败：%(error)s") % {"error": exc.message}) from exc
    if power != "off":
        raise FenceFailed(_("BMC 报告电源仍为“%(power)s”") % {"power": power})

"""Libvirt driver: desktops as domains on one libvirt URI (qemu:///system, qemu+ssh://..., test:///default).

One class, LibvirtDriver, assembled from the modules of this package, one per part of the job:
``connection`` (the connection, host capacity), ``inventory`` (reading VMs), ``domains``
(create, clone, resize, delete), ``power`` (power and console), ``snapshots``, ``disks``,
``storage`` (pools, volumes, golden images), ``networks`` (networks, DHCP, nwfilters) and
``forwards`` (the host firewall's elastic IPs and port forwards), ``migration`` (live and cold moves
to another host). ``objects`` finds libvirt's
objects by name; ``errors`` turns libvirt's errors into DriverError.
"""

from __future__ import annotations

from typing import Any

from .. import hostfw
from .connection import Connection
from .disks import Disks
from .domains import Domains
from .errors import map_error
from .forwards import Forwards
from .inventory import Inventory
from .migration import Migration
from .networks import Networks
from .power import Power
from .snapshots import Snapshots
from .storage import Storage, check_image


class LibvirtDriver(Inventory, Domains, Power, Snapshots, Disks, Storage, Networks, Forwards, Migration, Connection):
    """One libvirt connection, opened on first use and reopened when it breaks; thread-safe."""

    kind = "libvirt"
    # How a deleted disk's blocks are kept from the next volume (等保 剩余信息保护; compute/compliance.py).
    residual_protection = "wipe"

    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        qemu_img: str = "qemu-img",
        firewall_prefix: str = hostfw.DEFAULT_PREFIX,
        **_options: Any,
    ) -> None:
        super().__init__(url, username=username, password=password)
        self._qemu_img = qemu_img
        self._firewall_prefix = firewall_prefix


__all__ = ["LibvirtDriver", "check_image", "map_error"]

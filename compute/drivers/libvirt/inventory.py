"""Reading VMs: a domain's XML and its volumes' sizes as VMInfo, one VM or all of them."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET

import libvirt

from .. import xml as lx
from ..base import VMInfo
from . import objects as lo
from .connection import Connection
from .errors import tolerating


def _volume_sizes(
    conn: libvirt.virConnect, root: ET.Element, cache: dict, *, backing: bool = False
) -> tuple[dict, dict, dict]:
    """Capacity, path and (if asked) backing file per disk target, from the pools' volumes.

    One listing per pool serves every domain of a list_vms() call; the backing file costs
    an extra call per volume, so only get_vm() asks for it.
    """
    sizes: dict[str, int] = {}
    paths: dict[str, str] = {}
    backings: dict[str, str] = {}
    for disk in lx.domain_disks(root):
        target = disk.find("target")
        pool, volume, _path = lx.disk_source(disk)
        if target is None or not pool:
            continue
        if pool not in cache:
            cache[pool] = {}
            with contextlib.suppress(libvirt.libvirtError):
                for vol in conn.storagePoolLookupByName(pool).listAllVolumes(0):
                    with contextlib.suppress(libvirt.libvirtError):
                        cache[pool][vol.name()] = (vol.info()[1], vol.path())
        dev = target.get("dev", "")
        if volume in cache[pool]:
            sizes[dev], paths[dev] = cache[pool][volume]
            if backing:
                with contextlib.suppress(libvirt.libvirtError):
                    vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(volume)
                    backings[dev] = lo.volume_format(vol)[1]
    return sizes, paths, backings


def vm_info(
    conn: libvirt.virConnect, dom: libvirt.virDomain, cache: dict | None = None, *, detail: bool = True
) -> VMInfo:
    """The domain as VMInfo; ``cache`` shares pool listings across domains, ``detail`` adds backing files."""
    root = lx.parse(dom.XMLDesc(0))
    sizes, paths, backings = _volume_sizes(conn, root, {} if cache is None else cache, backing=detail)
    return lx.vm_info(root, lo.power_state(dom), sizes, paths, backings)


class Inventory(Connection):
    def list_vms(self) -> list[VMInfo]:
        def read(conn: libvirt.virConnect) -> list[VMInfo]:
            cache: dict = {}
            result = []
            for dom in conn.listAllDomains(0):
                # A domain undefined while we list it is simply not there any more.
                with tolerating(libvirt.VIR_ERR_NO_DOMAIN):
                    result.append(vm_info(conn, dom, cache, detail=False))
            return result

        return self._run("cannot list VMs", read)

    def list_templates(self) -> list[VMInfo]:
        return []  # libvirt's golden images are volumes: see volume_list()

    def get_vm(self, name: str) -> VMInfo:
        return self._run(f"cannot read VM {name!r}", lambda conn: vm_info(conn, lo.domain(conn, name)))

"""Hypervisor drivers: one interface (base.py), libvirt and vCenter behind it, found by kind; no Django here."""

import importlib
from typing import Any

from .base import (
    ConsoleAddress,
    DhcpHost,
    DiskInfo,
    DiskSpec,
    DriverError,
    ErrorCode,
    FirewallRule,
    ForwardMode,
    ForwardSpec,
    GpuSpec,
    HostInfo,
    HypervisorDriver,
    ImageInfo,
    NetworkSpec,
    NicInfo,
    NicSpec,
    NwFilterSpec,
    PowerState,
    SnapshotInfo,
    VMInfo,
    VMSpec,
    VolumeInfo,
)

# Endpoint kind -> "module:Class". Relative modules are this package's; a driver's module is
# imported on first use only, so a libvirt-only process never loads pyVmomi (nor the reverse).
DRIVERS: dict[str, str] = {
    "libvirt": ".libvirt:LibvirtDriver",
    "vcenter": ".vcenter:VCenterDriver",
}


def open_driver(kind: str, url: str, username: str = "", password: str = "", **options: Any) -> HypervisorDriver:
    """A driver for one endpoint. It connects on first use; call check() to test the endpoint.

    ``options`` are driver settings: for vCenter ``verify_ssl``, ``ca_file``, ``datacenter``,
    ``cluster``, ``resource_pool``, ``folder``, ``datastore``, ``task_timeout``; libvirt takes
    ``qemu_img`` and ``firewall_prefix``. Unknown options are ignored, so one endpoint row can
    feed either kind.
    """
    target = DRIVERS.get(kind)
    if target is None:
        raise DriverError(f"unknown hypervisor kind {kind!r}", permanent=True, code=ErrorCode.INVALID_SPEC)
    module_name, _, class_name = target.partition(":")
    driver_class = getattr(importlib.import_module(module_name, package=__name__), class_name)
    return driver_class(url, username=username, password=password, **options)


__all__ = [
    "DRIVERS",
    "ConsoleAddress",
    "DhcpHost",
    "DiskInfo",
    "DiskSpec",
    "DriverError",
    "ErrorCode",
    "FirewallRule",
    "ForwardMode",
    "ForwardSpec",
    "GpuSpec",
    "HostInfo",
    "HypervisorDriver",
    "ImageInfo",
    "NetworkSpec",
    "NicInfo",
    "NicSpec",
    "NwFilterSpec",
    "PowerState",
    "SnapshotInfo",
    "VMInfo",
    "VMSpec",
    "VolumeInfo",
    "open_driver",
]

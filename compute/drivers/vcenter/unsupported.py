"""What the vCenter driver does not do: libvirt's volumes, networks, DHCP, nwfilters and host firewall.

Each raises a permanent DriverError with ErrorCode.UNSUPPORTED that says what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..base import (
    DhcpHost,
    DiskInfo,
    ForwardSpec,
    MigrationProgress,
    MigrationResult,
    MigrationSpec,
    NetworkSpec,
    NwFilterSpec,
    PoolSpec,
    VolumeInfo,
    unsupported,
)

_HERE = "the vCenter driver"
_FIREWALL = "host firewall rules (elastic IPs, port forwards)"


class Unsupported:
    def console_password_set(self, name: str, password: str, valid_until: datetime) -> None:
        raise unsupported("VNC console passwords", f"{_HERE} (consoles are WebMKS tickets)")

    def reset_system_disk(self, name: str) -> None:
        raise unsupported("resetting a system disk", f"{_HERE} (delete and clone the VM again)")

    def image_import(self, pool: str, volume_name: str, source_path: str) -> VolumeInfo:
        raise unsupported("image upload", f"{_HERE} (import a template instead)")

    def image_flatten(self, pool: str, overlay_volume: str, new_volume_name: str) -> VolumeInfo:
        raise unsupported("image flattening", _HERE)

    def volume_list(self, pool: str) -> list[VolumeInfo]:
        raise unsupported("volume listing", _HERE)

    def volume_delete(self, pool: str, volume_name: str) -> None:
        raise unsupported("volume deletion", _HERE)

    def volume_create(self, pool: str, volume_name: str, size_gib: int) -> VolumeInfo:
        raise unsupported("volumes without a VM", f"{_HERE} (disks are added to a VM)")

    def attach_volume(self, name: str, pool: str, volume_name: str) -> DiskInfo:
        raise unsupported("attaching a kept disk", f"{_HERE} (a disk is a file of its VM)")

    def pool_ensure(self, name: str, path: str) -> None:
        raise unsupported("creating storage pools", f"{_HERE} (datastores are managed in vCenter)")

    def migrate_vm(
        self, name: str, spec: MigrationSpec, progress: Callable[[MigrationProgress], bool] | None = None
    ) -> MigrationResult:
        raise unsupported("migration by the portal", f"{_HERE} (vMotion and DRS are vCenter's)")

    def migration_disks_prepare(self, disks: tuple[DiskInfo, ...], *, copy: bool) -> tuple[DiskInfo, ...]:
        raise unsupported("migration by the portal", _HERE)

    def migration_downtime(self, name: str) -> int | None:
        return None

    def shared_pool_ensure(self, spec: PoolSpec) -> None:
        raise unsupported("shared storage pools", f"{_HERE} (datastores are managed in vCenter)")

    def network_ensure(self, spec: NetworkSpec) -> None:
        raise unsupported("network creation", f"{_HERE} (portgroups are managed in vCenter)")

    def network_delete(self, name: str) -> None:
        raise unsupported("network deletion", _HERE)

    def dhcp_host_set(self, network: str, host: DhcpHost) -> None:
        raise unsupported("DHCP reservations", _HERE)

    def dhcp_host_remove(self, network: str, mac: str) -> None:
        raise unsupported("DHCP reservations", _HERE)

    def dhcp_hosts(self, network: str) -> list[DhcpHost]:
        raise unsupported("DHCP reservations", _HERE)

    def nwfilter_define(self, spec: NwFilterSpec) -> str:
        raise unsupported("nwfilter", _HERE)

    def nwfilter_delete(self, name: str) -> None:
        raise unsupported("nwfilter", _HERE)

    def forward_set(self, spec: ForwardSpec) -> str:
        raise unsupported(_FIREWALL, _HERE)

    def forward_remove(self, key: str) -> bool:
        raise unsupported(_FIREWALL, _HERE)

    def forward_keys(self) -> set[str]:
        raise unsupported(_FIREWALL, _HERE)

"""Hypervisor driver interface: the HypervisorDriver protocol, the dataclasses that cross it, DriverError.

Nothing here knows about Django or the rest of CampusCloud: drivers take and return
these dataclasses, and every SDK failure reaches the caller as one DriverError whose
``permanent`` flag tells a task whether retrying can help.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

GIB = 1024**3
MIB = 1024**2


class ErrorCode(enum.StrEnum):
    """Values of DriverError.code: a StrEnum, so a code is stored and serialised as its plain string."""

    UNREACHABLE = "unreachable"  # host down, connection refused/reset, DNS failure
    TIMEOUT = "timeout"  # a call or task did not finish in time
    BUSY = "busy"  # the object is locked by another operation
    NOT_FOUND = "not_found"
    EXISTS = "exists"  # the name is taken by something that is not what was asked for
    INVALID_STATE = "invalid_state"  # e.g. starting a running VM
    INVALID_SPEC = "invalid_spec"  # the request itself is wrong (bad XML, bad size...)
    AUTH = "auth"  # credentials refused or not allowed
    CERTIFICATE = "certificate"  # TLS: the peer's certificate is not trusted, or ours is missing
    UNSUPPORTED = "unsupported"  # this hypervisor (or libvirt's test driver) cannot do it
    CONSOLE_UNSUPPORTED = "console_unsupported"
    BAD_IMAGE = "bad_image"  # an image file that is not a usable disk image
    INSUFFICIENT_RESOURCES = "insufficient_resources"
    ERROR = "error"  # anything else


class DriverError(Exception):
    """The one error a driver raises; ``permanent`` is False when a retry could succeed."""

    def __init__(self, message: str, *, permanent: bool, code: ErrorCode = ErrorCode.ERROR):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = ErrorCode(code)

    def __repr__(self) -> str:
        return f"DriverError({self.message!r}, permanent={self.permanent}, code={self.code.value!r})"


class PowerState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"  # libvirt paused; vSphere suspended
    UNKNOWN = "unknown"


class ForwardMode(enum.StrEnum):
    NAT = "nat"
    BRIDGE = "bridge"  # attach to an existing host bridge
    NONE = "none"  # isolated
    OPEN = "open"  # libvirt's bridge and DHCP, no firewall rules or routing of libvirt's (networks spanning hosts)


@dataclass(frozen=True)
class DiskSpec:
    """A data disk to create with the VM; ``pool`` is a libvirt pool or a vCenter datastore."""

    size_gib: int
    pool: str = ""  # empty: the system disk's pool/datastore


@dataclass(frozen=True)
class NicSpec:
    network: str  # libvirt network name, or vCenter network / portgroup name
    mac: str = ""  # empty: the hypervisor picks one
    nwfilter: str = ""  # libvirt only: name of an nwfilter to reference from the NIC
    filter_params: dict[str, str] = field(default_factory=dict)  # e.g. {"IP": "10.0.0.5"}


@dataclass(frozen=True)
class BootSpec:
    """Direct kernel boot: files on the host (libvirt only); the console is then the serial port."""

    kernel: str
    initrd: str = ""
    cmdline: str = ""


@dataclass(frozen=True)
class GpuSpec:
    """PCI passthrough of whole devices, or a mediated (vGPU) device."""

    mode: str  # "passthrough" or "vgpu"
    pci_addresses: tuple[str, ...] = ()  # passthrough: "0000:3b:00.0", ...
    mdev_uuid: str = ""  # vgpu on libvirt: an existing mdev's UUID
    mdev_type: str = ""  # vgpu: mdev type (libvirt, informational) or vGPU profile (vCenter)

    def __post_init__(self) -> None:
        if self.mode not in ("passthrough", "vgpu"):
            raise ValueError(f"GPU mode must be passthrough or vgpu, not {self.mode!r}")


@dataclass(frozen=True)
class VMSpec:
    """What to create. Libvirt clones ``image_pool``/``image_volume``; vCenter ``template``."""

    name: str
    vcpus: int
    memory_mib: int
    image_pool: str = ""
    image_volume: str = ""
    template: str = ""
    system_disk_gib: int = 0  # 0: the golden image's size; larger grows the clone
    data_disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    gpu: GpuSpec | None = None
    boot: BootSpec | None = None  # None: the system disk's own boot loader
    domain_type: str = "kvm"  # libvirt: "kvm" or "qemu" (TCG)
    machine: str = ""  # libvirt machine type, e.g. "q35"; empty: the hypervisor default
    vnc: bool = True
    description: str = ""
    # vCenter placement; empty: the driver's options, then the template's own
    folder: str = ""
    resource_pool: str = ""
    datastore: str = ""


@dataclass(frozen=True)
class DiskInfo:
    target: str  # libvirt "vda"; vCenter the device key, e.g. "2000"
    size_bytes: int = 0
    pool: str = ""
    volume: str = ""
    path: str = ""  # file path or "[datastore] dir/file.vmdk"
    backing: str = ""  # backing file of a linked clone, when known


@dataclass(frozen=True)
class NicInfo:
    mac: str
    network: str
    ip: str = ""


@dataclass(frozen=True)
class VMInfo:
    name: str
    uuid: str
    power_state: PowerState
    vcpus: int
    memory_mib: int
    disks: tuple[DiskInfo, ...] = ()
    nics: tuple[NicInfo, ...] = ()
    vnc_host: str = ""
    vnc_port: int | None = None  # only while running
    gpu: GpuSpec | None = None
    template: bool = False
    guest_ip: str = ""
    host: str = ""  # vCenter: the ESXi host; libvirt: empty (the endpoint is the host)
    description: str = ""
    ref: str = ""  # hypervisor-internal id: vCenter managed object id, libvirt empty


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    created_at: datetime | None = None
    description: str = ""
    parent: str = ""
    current: bool = False
    power_state: PowerState = PowerState.UNKNOWN  # of the VM when it was taken


@dataclass(frozen=True)
class HostInfo:
    name: str
    cpus: int
    memory_mib: int
    free_memory_mib: int
    hypervisor: str = ""  # e.g. "QEMU 7.2.0", "VMware vCenter Server 6.5.0"
    hosts: int = 1  # a vCenter endpoint sums its hosts' capacity
    numa_cells: int = 1
    # From libvirt's node-device API: GPUs (PCI display controllers, by address) and the mediated-device
    # types their drivers offer ({"type", "name", "available", "device"}), so vGPU profiles are discovered.
    gpus: tuple[str, ...] = ()
    mdev_types: tuple[dict, ...] = ()
    # Storage pools: {"name", "capacity_bytes", "available_bytes"}.
    storage: tuple[dict, ...] = ()


@dataclass(frozen=True)
class PoolSpec:
    """A storage pool every host of a cluster sees at ``path``: ``netfs`` (NFS, mounted by libvirt from
    ``source_host``:``source_path``) or ``dir`` (a directory the host already mounts there: CephFS,
    GlusterFS, GFS2/OCFS2 on iSCSI, or the testbed's bind-mounted directory)."""

    name: str
    kind: str  # "netfs" or "dir"
    path: str
    source_host: str = ""
    source_path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("netfs", "dir"):
            raise ValueError(f"pool kind must be netfs or dir, not {self.kind!r}")


@dataclass(frozen=True)
class MigrationSpec:
    """A move of a VM to another host, peer to peer: the source's libvirtd reaches ``target_uri`` itself.

    ``copy_storage``: the disks are on local pools and are copied (their volumes must exist on the
    target: ``migration_disks_prepare``; ``target_disks`` maps each disk's target dev to its path
    there). ``unsafe``: the storage is shared but libvirt cannot tell (a bind-mounted directory).
    ``bandwidth_mib``: MiB/s at most; 0 is no limit. A stopped VM moves as its definition only.
    """

    target_uri: str
    copy_storage: bool = False
    unsafe: bool = False
    bandwidth_mib: int = 0
    target_disks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MigrationProgress:
    data_total: int = 0
    data_processed: int = 0
    data_remaining: int = 0


@dataclass(frozen=True)
class MigrationResult:
    live: bool
    cancelled: bool = False
    duration_ms: int = 0


@dataclass(frozen=True)
class ConsoleAddress:
    host: str
    port: int
    ticket: str = ""
    url: str = ""


@dataclass(frozen=True)
class VolumeInfo:
    pool: str
    name: str
    path: str
    format: str
    capacity_bytes: int
    allocation_bytes: int = 0
    backing: str = ""


@dataclass(frozen=True)
class ImageInfo:
    """An image file checked before import: format is qcow2, raw or iso (a raw ISO 9660 file)."""

    path: str
    format: str
    virtual_size_bytes: int
    file_size_bytes: int


@dataclass(frozen=True)
class DhcpHost:
    mac: str
    ip: str
    name: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    forward: str = ForwardMode.NAT
    bridge: str = ""  # bridge to create (nat/none) or the existing host bridge (bridge)
    cidr: str = ""  # e.g. "10.20.0.0/24"; not used in bridge mode
    gateway: str = ""  # empty: the first host address of cidr
    dhcp_start: str = ""  # empty with a cidr: no DHCP range
    dhcp_end: str = ""
    dhcp_hosts: tuple[DhcpHost, ...] = ()
    # 802.1Q on the wire: libvirt tags only bridged networks on an Open vSwitch bridge (a plain
    # Linux bridge must sit on the VLAN's sub-interface instead; NAT networks are never tagged).
    vlan: int | None = None
    virtualport: str = ""  # "openvswitch" when ``bridge`` is an Open vSwitch bridge
    # The router DHCP hands out when it is not the bridge's own address (a network spanning hosts: the
    # bridge holds the host's DHCP address, the gateway is on the network host).
    dhcp_router: str = ""
    # Spanning tree on libvirt's bridge. Off for a network spanning hosts: its bridge has one VXLAN port,
    # which never floods back into the overlay, so there is no loop to break, only STP's delays.
    stp: bool = True


@dataclass(frozen=True)
class FirewallRule:
    direction: str  # "in" (to the VM) or "out" (from the VM)
    protocol: str = "all"  # tcp, udp, icmp, all
    port_min: int | None = None
    port_max: int | None = None
    remote_cidr: str = ""  # empty: anywhere
    action: str = "accept"  # accept or drop
    priority: int = 500  # lower runs first (libvirt's range is -1000..1000)

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise ValueError(f"direction must be in or out, not {self.direction!r}")
        if self.protocol not in ("tcp", "udp", "icmp", "all"):
            raise ValueError(f"protocol must be tcp, udp, icmp or all, not {self.protocol!r}")
        if self.action not in ("accept", "drop"):
            raise ValueError(f"action must be accept or drop, not {self.action!r}")


@dataclass(frozen=True)
class NwFilterSpec:
    """A security group as a libvirt nwfilter; keep ``uuid`` stable across redefinitions."""

    name: str
    uuid: str = ""  # empty: keep the existing filter's uuid, or let libvirt pick one
    rules: tuple[FirewallRule, ...] = ()
    default_drop: bool = True  # drop what no rule accepts (DHCP and ARP stay allowed)
    # Reference libvirt's stock ``clean-traffic`` filter: the NIC sends only from its own MAC and
    # from the IP the referencing interface passes as the ``IP`` parameter (no MAC/IP/ARP spoofing).
    # Give the NIC that parameter: without it libvirt learns the IP from the guest's first packets
    # and installs none of the filter's rules until then.
    anti_spoofing: bool = False


@dataclass(frozen=True)
class ForwardSpec:
    """A public address (and port) forwarded to a guest on a NAT network, by a host's firewall (hostfw).

    Applied by the process on the host that holds the network's gateway: the portal's worker for
    a local ``qemu:///system`` endpoint (``LibvirtDriver.forward_set``), else the network node's
    agent inside the gateway's namespace (compute/drivers/gateway.py). Never across hosts.
    """

    key: str  # the owner on this host, e.g. "eip-3" or "pf-12": its rules are replaced as a unit
    public_ip: str
    private_ip: str
    bridge: str  # the NAT network's bridge, where the guest is
    protocol: str = "all"  # tcp or udp with the ports; "all": the whole address, both ways (1:1 NAT)
    public_port: int | None = None
    private_port: int | None = None
    private_cidr: str = ""  # "all" only: the guest's subnet, which keeps seeing its private address


@runtime_checkable
class HypervisorDriver(Protocol):
    """What every driver offers: every method the portal calls on a driver is declared here.

    A method the hypervisor (or the endpoint) cannot do raises a permanent DriverError with
    code ErrorCode.UNSUPPORTED (see ``unsupported``), so a task records it and stops retrying.
    """

    kind: str
    url: str
    # How a deleted disk's blocks are kept from the next volume: "wipe" (zeroed before deletion) or
    # "fresh_allocation" (the storage zeroes blocks it hands out); read by compute's 等保 check.
    residual_protection: str

    def close(self) -> None: ...
    def check(self) -> None: ...
    def host_info(self) -> HostInfo: ...

    # VMs
    def list_vms(self) -> list[VMInfo]: ...
    def list_templates(self) -> list[VMInfo]: ...
    def get_vm(self, name: str) -> VMInfo: ...
    def create_vm(self, spec: VMSpec, *, start: bool = True) -> VMInfo: ...
    def start(self, name: str) -> None: ...
    def shutdown(self, name: str, *, force: bool = False) -> None: ...
    def reboot(self, name: str) -> None: ...
    def suspend(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def delete_vm(self, name: str) -> None: ...
    def forget_vm(self, name: str) -> bool: ...
    def console_address(self, name: str) -> ConsoleAddress: ...
    def console_password_set(self, name: str, password: str, valid_until: datetime) -> None: ...

    # snapshots
    def snapshot_create(self, name: str, snapshot: str, description: str = "") -> SnapshotInfo: ...
    def snapshot_list(self, name: str) -> list[SnapshotInfo]: ...
    def snapshot_revert(self, name: str, snapshot: str) -> None: ...
    def snapshot_delete(self, name: str, snapshot: str) -> None: ...

    # disks and images
    def attach_disk(self, name: str, size_gib: int, *, pool: str = "") -> DiskInfo: ...
    def detach_disk(self, name: str, target: str, *, delete_volume: bool = True) -> None: ...
    def reset_system_disk(self, name: str) -> None: ...
    def image_import(self, pool: str, volume_name: str, source_path: str) -> VolumeInfo: ...
    def image_flatten(self, pool: str, overlay_volume: str, new_volume_name: str) -> VolumeInfo: ...
    def volume_list(self, pool: str) -> list[VolumeInfo]: ...
    def volume_delete(self, pool: str, volume_name: str) -> None: ...
    def volume_create(self, pool: str, volume_name: str, size_gib: int) -> VolumeInfo: ...
    def attach_volume(self, name: str, pool: str, volume_name: str) -> DiskInfo: ...
    def pool_ensure(self, name: str, path: str) -> None: ...
    def shared_pool_ensure(self, spec: PoolSpec) -> None: ...

    # migration (source: migrate_vm; target: the copied disks' volumes, the downtime it measured)
    def migrate_vm(
        self, name: str, spec: MigrationSpec, progress: Callable[[MigrationProgress], bool] | None = None
    ) -> MigrationResult: ...
    def migration_disks_prepare(self, disks: tuple[DiskInfo, ...], *, copy: bool) -> tuple[DiskInfo, ...]: ...
    def migration_downtime(self, name: str) -> int | None: ...

    # size and copies (the VM stopped)
    def resize(self, name: str, *, vcpus: int, memory_mib: int, gpu: GpuSpec | None = None) -> VMInfo: ...
    def clone_vm(self, source: str, spec: VMSpec, *, start: bool = True) -> VMInfo: ...

    # networks and firewalls
    def network_ensure(self, spec: NetworkSpec) -> None: ...
    def network_delete(self, name: str) -> None: ...
    def dhcp_host_set(self, network: str, host: DhcpHost) -> None: ...
    def dhcp_host_remove(self, network: str, mac: str) -> None: ...
    def dhcp_hosts(self, network: str) -> list[DhcpHost]: ...
    def nwfilter_define(self, spec: NwFilterSpec) -> str: ...
    def nwfilter_delete(self, name: str) -> None: ...

    # host firewall: elastic IPs and port forwards in front of NAT networks
    def forward_set(self, spec: ForwardSpec) -> str: ...
    def forward_remove(self, key: str) -> bool: ...
    def forward_keys(self) -> set[str]: ...


def unsupported(what: str, where: str) -> DriverError:
    return DriverError(f"{what} is not supported by {where}", permanent=True, code=ErrorCode.UNSUPPORTED)

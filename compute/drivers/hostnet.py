"""Host plumbing of networks that span hosts, run by a compute node's agent on the node itself.

A tenant network on several hosts is one L2 segment: on each host its bridge (libvirt's network) holds a
VXLAN device with the network's VNI on the host's data interface, without learning, and one all-zero
forwarding entry per peer host's data address (head-end replication: no multicast on the data network).
A flat network on a provider VLAN has the VLAN's sub-interface of the data interface in its bridge instead.

Everything is read back from the kernel (``ip -j``, ``bridge -j``) and compared, so applying a spec twice
changes nothing and a repair run fixes what drifted. Devices are named with a prefix of ours, so devices
of networks the host no longer holds can be found and removed. Errors are ``DriverError``s with codes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .base import DriverError, ErrorCode

ALL_ZERO_MAC = "00:00:00:00:00:00"
VXLAN_PORT = 4789
DHCP_CHAIN = "CC-SPAN-DHCP"
DHCP_DROP = ["-p", "IPv4", "--ip-proto", "udp", "--ip-dport", "67:68", "-j", "DROP"]
# Where DHCP must not cross a tunnel port: into the host (its dnsmasq), through the bridge, out of the host.
DHCP_HOOKS = (("INPUT", "-i"), ("FORWARD", "-i"), ("FORWARD", "-o"), ("OUTPUT", "-o"))

Runner = Callable[[list[str]], str]


@dataclass(frozen=True)
class OverlaySpec:
    """A VXLAN device in a network's bridge: ``peers`` are the other holders' data addresses."""

    bridge: str
    device: str
    vni: int
    local: str  # this host's data address; the data interface is the one holding it
    peers: tuple[str, ...] = ()
    port: int = VXLAN_PORT


@dataclass(frozen=True)
class VlanSpec:
    """The provider VLAN's sub-interface of the data interface, in a flat network's bridge."""

    bridge: str
    device: str
    vlan: int
    local: str  # this host's data address; the VLAN rides on the interface holding it


def _code(stderr: str) -> ErrorCode:
    text = stderr.lower()
    if "does not exist" in text or "cannot find device" in text:
        return ErrorCode.NOT_FOUND
    if "file exists" in text:
        return ErrorCode.EXISTS
    if "operation not permitted" in text:
        return ErrorCode.AUTH
    if "unknown device type" in text or "not supported" in text:
        return ErrorCode.UNSUPPORTED
    return ErrorCode.ERROR


def run(argv: list[str]) -> str:
    """Run one ``ip``/``bridge`` command; its stdout, or a DriverError saying what the kernel refused."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise DriverError(
            f"{argv[0]} is not installed on this host", permanent=True, code=ErrorCode.UNSUPPORTED
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"{' '.join(argv)} timed out", permanent=False, code=ErrorCode.TIMEOUT) from exc
    if result.returncode != 0:
        code = _code(result.stderr)
        raise DriverError(
            f"{' '.join(argv)}: {result.stderr.strip()}",
            permanent=code in (ErrorCode.UNSUPPORTED, ErrorCode.AUTH),
            code=code,
        )
    return result.stdout


def _json(text: str) -> list:
    try:
        return json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise DriverError(f"unreadable output of ip: {exc}", permanent=False) from exc


def _vxlan_matches(link: dict, spec: OverlaySpec, parent: str) -> bool:
    info = link.get("linkinfo", {})
    data = info.get("info_data", {})
    return (
        info.get("info_kind") == "vxlan"
        and data.get("id") == spec.vni
        and data.get("local") == spec.local
        and data.get("link") == parent
        and data.get("port") == spec.port
        and data.get("learning") is False
    )


def _vlan_matches(link: dict, spec: VlanSpec, parent: str) -> bool:
    info = link.get("linkinfo", {})
    return (
        info.get("info_kind") == "vlan"
        and info.get("info_data", {}).get("id") == spec.vlan
        and link.get("link") == parent
    )


class HostNet:
    """The host's own network devices through ``ip`` and ``bridge`` (``runner`` replaces them in unit tests)."""

    def __init__(self, runner: Runner | None = None):
        self._run = runner or run

    def links(self) -> dict[str, dict]:
        return {link["ifname"]: link for link in _json(self._run(["ip", "-j", "-d", "link", "show"]))}

    def interface_of(self, address: str) -> str:
        """The interface holding ``address`` (the data interface for the host's data address)."""
        for link in _json(self._run(["ip", "-j", "addr", "show"])):
            if any(a.get("local") == address for a in link.get("addr_info", [])):
                return link["ifname"]
        raise DriverError(
            f"no interface of this host has the data address {address}", permanent=True, code=ErrorCode.NOT_FOUND
        )

    def _bridge_checked(self, links: dict[str, dict], bridge: str) -> None:
        if bridge not in links:
            raise DriverError(
                f"bridge {bridge} is not on this host (its libvirt network is not started)",
                permanent=False,
                code=ErrorCode.NOT_FOUND,
            )

    def _enslaved(self, links: dict[str, dict], device: str, bridge: str, changes: list[str]) -> None:
        link = links[device]
        if link.get("master") != bridge:
            self._run(["ip", "link", "set", "dev", device, "master", bridge])
            changes.append(f"{device}: into {bridge}")
        if "UP" not in link.get("flags", []):
            self._run(["ip", "link", "set", "dev", device, "up"])
            changes.append(f"{device}: up")

    def _recreated(self, links, device: str, matches: bool, add: list[str], changes: list[str]) -> dict:
        if device in links and not matches:
            self._run(["ip", "link", "del", "dev", device])
            changes.append(f"{device}: removed (other settings)")
            del links[device]
        if device not in links:
            self._run(add)
            changes.append(f"{device}: created")
            links[device] = _json(self._run(["ip", "-j", "-d", "link", "show", "dev", device]))[0]
        return links

    def overlay_apply(self, spec: OverlaySpec) -> list[str]:
        """Make the VXLAN device, its bridge and its forwarding entries what ``spec`` says; the changes made."""
        if not 1 <= spec.vni <= 16777215:
            raise DriverError(f"VNI {spec.vni} is not 1-16777215", permanent=True, code=ErrorCode.INVALID_SPEC)
        parent = self.interface_of(spec.local)
        links = self.links()
        self._bridge_checked(links, spec.bridge)
        changes: list[str] = []
        add = ["ip", "link", "add", spec.device, "type", "vxlan", "id", str(spec.vni), "local", spec.local]
        add += ["dev", parent, "dstport", str(spec.port), "nolearning"]
        current = links.get(spec.device)
        matches = current is not None and _vxlan_matches(current, spec, parent)
        links = self._recreated(links, spec.device, matches, add, changes)
        self._enslaved(links, spec.device, spec.bridge, changes)
        changes += self.fdb_apply(spec.device, spec.peers)
        return changes

    def fdb_peers(self, device: str) -> set[str]:
        """The peers the device floods to (its all-zero forwarding entries)."""
        entries = _json(self._run(["bridge", "-j", "fdb", "show", "dev", device]))
        return {e["dst"] for e in entries if e.get("mac") == ALL_ZERO_MAC and e.get("dst")}

    def fdb_apply(self, device: str, peers: Iterable[str]) -> list[str]:
        wanted, current = set(peers), self.fdb_peers(device)
        changes = []
        for peer in sorted(wanted - current):
            self._run(["bridge", "fdb", "append", ALL_ZERO_MAC, "dev", device, "dst", peer])
            changes.append(f"{device}: peer {peer} added")
        for peer in sorted(current - wanted):
            self._run(["bridge", "fdb", "del", ALL_ZERO_MAC, "dev", device, "dst", peer])
            changes.append(f"{device}: peer {peer} removed")
        return changes

    def vlan_apply(self, spec: VlanSpec) -> list[str]:
        """Make the VLAN sub-interface of the data interface a port of the flat network's bridge."""
        if not 1 <= spec.vlan <= 4094:
            raise DriverError(f"VLAN id {spec.vlan} is not 1-4094", permanent=True, code=ErrorCode.INVALID_SPEC)
        parent = self.interface_of(spec.local)
        links = self.links()
        self._bridge_checked(links, spec.bridge)
        changes: list[str] = []
        add = ["ip", "link", "add", "link", parent, "name", spec.device, "type", "vlan", "id", str(spec.vlan)]
        current = links.get(spec.device)
        matches = current is not None and _vlan_matches(current, spec, parent)
        links = self._recreated(links, spec.device, matches, add, changes)
        self._enslaved(links, spec.device, spec.bridge, changes)
        return changes

    def _chains(self) -> dict[str, list[str]]:
        """ebtables' filter table: {chain: its rules as listed}."""
        chains: dict[str, list[str]] = {}
        current = None
        for line in self._run(["ebtables", "-L"]).splitlines():
            if line.startswith("Bridge chain: "):
                current = line.removeprefix("Bridge chain: ").split(",")[0]
                chains[current] = []
            elif current and line.strip():
                chains[current].append(line.strip())
        return chains

    def dhcp_fence(self, prefix: str) -> list[str]:
        """DHCP stays on its host: no DHCP frame crosses a tunnel port named ``prefix``... (each host's dnsmasq
        serves only its own desktops; a peer's would otherwise see every request, and refuse some)."""
        chains, changes = self._chains(), []
        drop = " ".join(DHCP_DROP)
        if DHCP_CHAIN not in chains:
            self._run(["ebtables", "-N", DHCP_CHAIN, "-P", "RETURN"])
            chains[DHCP_CHAIN] = []
        if chains[DHCP_CHAIN] != [drop]:
            self._run(["ebtables", "-F", DHCP_CHAIN])
            self._run(["ebtables", "-A", DHCP_CHAIN, *DHCP_DROP])
            changes.append(f"{DHCP_CHAIN}: DHCP dropped")
        for chain, flag in DHCP_HOOKS:
            if f"{flag} {prefix}+ -j {DHCP_CHAIN}" not in chains.get(chain, []):
                self._run(["ebtables", "-A", chain, flag, f"{prefix}+", "-j", DHCP_CHAIN])
                changes.append(f"{chain}: {flag} {prefix}+ to {DHCP_CHAIN}")
        return changes

    def devices_prune(self, prefixes: tuple[str, ...], keep: Iterable[str]) -> list[str]:
        """Remove our devices (named with one of ``prefixes``) that are not in ``keep``; the names removed."""
        keep = set(keep)
        removed = []
        for name in sorted(self.links()):
            if name.startswith(prefixes) and name not in keep:
                try:
                    self._run(["ip", "link", "del", "dev", name])
                except DriverError as exc:
                    if exc.code != ErrorCode.NOT_FOUND:
                        raise
                removed.append(name)
        return removed

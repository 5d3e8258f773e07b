"""A router network's gateway on its site's network host: a network namespace of the network's own.

Run by the network host's agent on the host itself (never by the portal for another host).
For network N, whose bridge B is on this host (the span overlay joins it to every other host):

    guests ── B ── gwl<N> ═ lan0 [namespace ccgw<N>: the gateway IP]  wan0 ═ gwu<N> ── host ── uplink
                                                        169.254.x.2/30        169.254.x.1/30

- in the namespace: the subnet's gateway address on ``lan0``, a default route to the host over
  ``wan0``, the campus chains (hostfw, prefix ``CC``) with a DNAT per elastic IP and port forward
  and the SNAT of a 1:1 guest as its public address; everything else from the subnet leaves
  masqueraded as the namespace's uplink address (``-o wan0 -j MASQUERADE``, after our chains);
- on the host: a /32 route per public address into the namespace (the campus routes the public
  pool to the host's management address), the namespace's uplink address leaving as the host's own
  address (chains of prefix ``CCGW``, key ``gw-<N>``), forwarding to and from the namespace accepted.

Transfer links are /30s of 169.254.0.0/16 numbered by the network's id (networks 1-16383).
Everything is idempotent: ``gateway_apply`` compares and fixes. Nothing here knows Django; errors
are DriverError.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess
from dataclasses import dataclass, replace

from . import hostfw
from .base import DriverError, ErrorCode, ForwardSpec

NETNS_PREFIX = "ccgw"
HOST_PREFIX = "CCGW"  # the host's own chains (uplink SNAT, forwarding accepted)
LAN, WAN = "lan0", "wan0"
_TRANSFER = ipaddress.IPv4Network("169.254.0.0/16")
_NETNS_RE = re.compile(rf"^{NETNS_PREFIX}(\d+)$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MASQUERADE = ("-o", WAN, "-m", "comment", "--comment", "cc:gw", "-j", "MASQUERADE")


@dataclass(frozen=True)
class GatewaySpec:
    """One router network's gateway on this host."""

    index: int  # the network's id: names the namespace, its links, its transfer /30 and its rules
    bridge: str  # the network's bridge on this host
    gateway: str  # the subnet's gateway with its prefix, e.g. "10.0.0.1/24"
    uplink_source: str  # the host's address the subnet's traffic leaves as
    forwards: tuple[ForwardSpec, ...] = ()  # elastic IPs and port forwards into this network

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.index}"

    @property
    def lan_link(self) -> str:
        return f"gwl{self.index}"

    @property
    def wan_link(self) -> str:
        return f"gwu{self.index}"

    @property
    def key(self) -> str:
        return f"gw-{self.index}"


def transfer(index: int) -> tuple[str, str]:
    """(host end, namespace end) of network ``index``'s transfer link."""
    if not 1 <= index < _TRANSFER.num_addresses // 4:
        raise _invalid(f"network {index}: gateways take networks 1-{_TRANSFER.num_addresses // 4 - 1}")
    base = _TRANSFER.network_address + 4 * index
    return str(base + 1), str(base + 2)


def _invalid(message: str) -> DriverError:
    return DriverError(message, permanent=True, code=ErrorCode.INVALID_SPEC)


def _validate(spec: GatewaySpec) -> None:
    transfer(spec.index)
    if not _IFNAME_RE.match(spec.bridge or ""):
        raise _invalid(f"bridge {spec.bridge!r} is not an interface name")
    try:
        ipaddress.IPv4Interface(spec.gateway)
        ipaddress.IPv4Address(spec.uplink_source)
    except ValueError as exc:
        raise _invalid(f"gateway {spec.gateway!r} / uplink {spec.uplink_source!r}: {exc}") from exc


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        message = f"{argv[0]} is not installed on this host"
        raise DriverError(message, permanent=True, code=ErrorCode.UNSUPPORTED) from exc
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"{shlex.join(argv)} timed out", permanent=False, code=ErrorCode.TIMEOUT) from exc
    if check and done.returncode != 0:
        raise DriverError(
            f"{shlex.join(argv)} failed: {(done.stderr or done.stdout).strip()}", permanent=False, code=ErrorCode.ERROR
        )
    return done


def _link_exists(name: str, netns: str = "") -> bool:
    scope = ("-n", netns) if netns else ()
    return _run("ip", *scope, "link", "show", "dev", name, check=False).returncode == 0


def _mtu(name: str) -> int:
    words = _run("ip", "-o", "link", "show", "dev", name).stdout.split()
    return int(words[words.index("mtu") + 1]) if "mtu" in words else 1500


def _addresses(name: str, netns: str = "") -> set[str]:
    scope = ("-n", netns) if netns else ()
    out = _run("ip", *scope, "-o", "-4", "addr", "show", "dev", name).stdout
    return {line.split()[3] for line in out.splitlines() if len(line.split()) > 3}


def _set_address(name: str, wanted: str, netns: str = "") -> bool:
    """``name`` holds exactly the address ``wanted``; whether it had to change."""
    scope = ("-n", netns) if netns else ()
    present = _addresses(name, netns)
    if present == {wanted}:
        return False
    for stale in present - {wanted}:
        _run("ip", *scope, "addr", "del", stale, "dev", name)
    if wanted not in present:
        _run("ip", *scope, "addr", "add", wanted, "dev", name)
    return True


def namespaces() -> set[int]:
    """The network ids whose gateway namespace is on this host."""
    out = _run("ip", "netns", "list").stdout
    found = set()
    for line in out.splitlines():
        match = _NETNS_RE.match(line.split(" ", 1)[0]) if line.strip() else None
        if match:
            found.add(int(match.group(1)))
    return found


def _links(spec: GatewaySpec) -> bool:
    """The namespace and its two veth legs, up, with their addresses; whether anything changed."""
    changed = False
    if spec.index not in namespaces():
        _run("ip", "netns", "add", spec.netns)
        changed = True
    ns = ("-n", spec.netns)
    mtu = str(_mtu(spec.bridge))
    for link, inside in ((spec.lan_link, LAN), (spec.wan_link, WAN)):
        if not _link_exists(link) or not _link_exists(inside, spec.netns):
            _run("ip", "link", "del", link, check=False)
            _run("ip", "-n", spec.netns, "link", "del", inside, check=False)
            _run("ip", "link", "add", link, "type", "veth", "peer", "name", inside, "netns", spec.netns)
            changed = True
    _run("ip", "link", "set", spec.lan_link, "mtu", mtu, "master", spec.bridge, "up")
    _run("ip", *ns, "link", "set", LAN, "mtu", mtu, "up")
    _run("ip", "link", "set", spec.wan_link, "up")
    _run("ip", *ns, "link", "set", WAN, "up")
    _run("ip", *ns, "link", "set", "lo", "up")
    host_end, ns_end = transfer(spec.index)
    changed |= _set_address(LAN, spec.gateway, spec.netns)
    changed |= _set_address(spec.wan_link, f"{host_end}/30")
    changed |= _set_address(WAN, f"{ns_end}/30", spec.netns)
    _run("ip", *ns, "route", "replace", "default", "via", host_end, "dev", WAN)
    _run("ip", "netns", "exec", spec.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    _run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    return changed


def _routes(spec: GatewaySpec) -> bool:
    """A /32 route into the namespace for every public address of its forwards, and no other."""
    _host_end, ns_end = transfer(spec.index)
    wanted = {f.public_ip for f in spec.forwards}
    out = _run("ip", "-o", "-4", "route", "show", "dev", spec.wan_link).stdout
    present = {line.split()[0] for line in out.splitlines() if " via " in line and "/" not in line.split()[0]}
    for stale in present - wanted:
        _run("ip", "route", "del", f"{stale}/32", "dev", spec.wan_link, check=False)
    for public in sorted(wanted - present):
        # replace: the address may still be routed into another network's namespace (it moved).
        _run("ip", "route", "replace", f"{public}/32", "via", ns_end, "dev", spec.wan_link)
    return present != wanted


def _namespace_rules(spec: GatewaySpec) -> bool:
    """Inside the namespace: the DNAT/SNAT of every forward, the rest masqueraded out of the uplink."""
    inside = hostfw.HostFirewall(hostfw.DEFAULT_PREFIX, netns=spec.netns)
    changed = False
    wanted = {f.key for f in spec.forwards}
    for forward in spec.forwards:
        changed |= inside.apply(replace(forward, bridge=LAN)) != "unchanged"
    for stale in inside.keys() - wanted:
        changed |= inside.remove(stale)
    exec_ = ("ip", "netns", "exec", spec.netns, "iptables", "-w", "5", "-t", "nat")
    if _run(*exec_, "-C", "POSTROUTING", *_MASQUERADE, check=False).returncode != 0:
        _run(*exec_, "-A", "POSTROUTING", *_MASQUERADE)
        changed = True
    return changed


def _host_rules(spec: GatewaySpec) -> bool:
    """On the host: the namespace's uplink address leaves as the host's; forwarding to it accepted."""
    _host_end, ns_end = transfer(spec.index)
    fw = hostfw.HostFirewall(HOST_PREFIX)
    rules = [
        hostfw.Rule("nat", fw.snat, ("-s", f"{ns_end}/32", "-j", "SNAT", "--to-source", spec.uplink_source)),
        hostfw.Rule("filter", fw.fwd, ("-i", spec.wan_link, "-j", "ACCEPT")),
        hostfw.Rule("filter", fw.fwd, ("-o", spec.wan_link, "-j", "ACCEPT")),
    ]
    return fw.apply_rules(spec.key, rules) != "unchanged"


def gateway_apply(spec: GatewaySpec) -> str:
    """Make the host hold ``spec``'s gateway exactly: "added", "changed" or "unchanged".

    The network's bridge must be on this host already (it is the overlay's); without it the
    gateway waits (a transient NOT_FOUND) rather than making a bridge libvirt would not know."""
    _validate(spec)
    if not _link_exists(spec.bridge):
        raise DriverError(
            f"bridge {spec.bridge} is not on this host: the network does not reach its network host yet",
            permanent=False,
            code=ErrorCode.NOT_FOUND,
        )
    gateway_ip = spec.gateway.split("/", 1)[0]
    if any(a.split("/", 1)[0] == gateway_ip for a in _addresses(spec.bridge)):
        # libvirt's NAT model (the gateway on every host's bridge): a second gateway would answer ARP too.
        raise DriverError(
            f"bridge {spec.bridge} holds the gateway {gateway_ip} itself (a libvirt NAT network): the network "
            f"must be a bridge without an address on its network node",
            permanent=False,
            code=ErrorCode.INVALID_STATE,
        )
    made = spec.index not in namespaces()
    changed = _links(spec)
    changed |= _namespace_rules(spec)
    changed |= _routes(spec)
    changed |= _host_rules(spec)
    if made:
        return "added"
    return "changed" if changed else "unchanged"


def gateway_remove(index: int) -> bool:
    """Take network ``index``'s gateway off this host (namespace, legs, routes, host rules); whether it was there."""
    there = index in namespaces()
    if there:
        _run("ip", "netns", "del", f"{NETNS_PREFIX}{index}")
    _run("ip", "link", "del", f"gwl{index}", check=False)
    _run("ip", "link", "del", f"gwu{index}", check=False)
    removed = hostfw.HostFirewall(HOST_PREFIX).remove(f"gw-{index}")
    return there or removed

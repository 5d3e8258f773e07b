"""Host firewall (iptables) rules that put elastic IPs and port forwards in front of libvirt NAT networks.

libvirt's own chains only masquerade a NAT network outwards and reject new connections
coming in (LIBVIRT_FWI), so a public address reaches a guest only through rules of our
own, kept in three chains per prefix (the endpoint's ``firewall_prefix``, "CC" by default):

- ``<P>-DNAT`` (nat, jumped to from PREROUTING and OUTPUT): the public address (and port)
  rewritten to the guest's; port forwards sit above whole-address (1:1) rules so that a
  forwarded port wins over an elastic IP bound to another guest;
- ``<P>-SNAT`` (nat, from POSTROUTING, ahead of libvirt's masquerade): a guest with a 1:1
  elastic IP leaves as that address;
- ``<P>-FWD`` (filter, from FORWARD, ahead of libvirt's reject): accept what we DNAT'ed.

Every rule carries the comment ``cc:<key>:<digest>``: the key names its owner (an elastic
IP or a port forward) so one owner's rules are replaced as a unit, and the digest of the
rule's own arguments tells a rule in place from a stale one without parsing iptables'
normalised output. Changing rules takes a host-wide file lock (every worker on the host
shares the builtin chains) and ``iptables -w`` (libvirt edits them too).

Nothing here knows Django; errors are DriverError. A process edits the firewall of the host
it runs on (or of a network namespace there: ``netns``): the portal's worker for a local
``qemu:///system`` endpoint (``is_local_uri``), a compute node's agent for its own host
(compute/drivers/gateway.py, compute/networking/gateway.py). Nobody edits another host's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from .base import DriverError, ErrorCode, ForwardSpec

DEFAULT_PREFIX = "CC"
_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,19}$")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_BRIDGE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_COMMENT = "cc"
# iptables' exit status 4 is "resource problem" (the xtables lock, a concurrent nft commit).
_EXIT_RESOURCE = 4
_thread_lock = threading.Lock()
_BUILTINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


def is_local_uri(url: str) -> bool:
    """Whether the libvirt URI is this machine's system daemon (whose host firewall we can edit)."""
    parts = urlsplit(url)
    transport = parts.scheme.partition("+")[2]
    return (
        parts.scheme.partition("+")[0] == "qemu"
        and transport in ("", "unix")
        and not parts.netloc
        and (parts.path.rstrip("/") == "/system")
    )


@dataclass(frozen=True)
class Rule:
    """One iptables rule: where it goes and its match/target arguments (without the comment)."""

    table: str
    chain: str
    args: tuple[str, ...]
    top: bool = False  # inserted at the head of its chain instead of appended

    @property
    def digest(self) -> str:
        return hashlib.sha256("\0".join((self.table, self.chain, *self.args)).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Present:
    """A rule found in one of our chains, as ``iptables -S`` prints it."""

    table: str
    chain: str
    key: str
    digest: str
    argv: tuple[str, ...]  # everything after "-A <chain>"


def _invalid(message: str) -> DriverError:
    return DriverError(message, permanent=True, code=ErrorCode.INVALID_SPEC)


def _address(value: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError as exc:
        raise _invalid(f"{what} {value!r} is not an IPv4 address") from exc


def _port(value: int | None, what: str) -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise _invalid(f"{what} must be a port number 1-65535, not {value!r}")
    return value


class HostFirewall:
    """The campus chains of one prefix on this host."""

    def __init__(
        self, prefix: str = DEFAULT_PREFIX, *, iptables: str = "iptables", lock_path: str = "", netns: str = ""
    ) -> None:
        if not _PREFIX_RE.match(prefix or ""):
            raise _invalid(f"firewall prefix {prefix!r}: 1-20 letters, digits, - or _, starting with a letter")
        if netns and not _BRIDGE_RE.match(netns):
            raise _invalid(f"network namespace {netns!r} is not a namespace name")
        self.prefix = prefix
        self.netns = netns  # the rules of a network namespace of this host (a router's gateway)
        self.dnat = f"{prefix}-DNAT"
        self.snat = f"{prefix}-SNAT"
        self.fwd = f"{prefix}-FWD"
        self._iptables = iptables
        run_lock = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()
        self._lock_path = lock_path or os.path.join(run_lock, "campuscloud-hostfw.lock")

    # ---- what a forward becomes --------------------------------------------------------

    @property
    def _jumps(self) -> tuple[tuple[str, str, str], ...]:
        """(table, builtin chain, our chain): each jump must come before libvirt's own rules."""
        return (
            ("nat", "PREROUTING", self.dnat),
            ("nat", "OUTPUT", self.dnat),
            ("nat", "POSTROUTING", self.snat),
            ("filter", "FORWARD", self.fwd),
        )

    def rules(self, spec: ForwardSpec) -> list[Rule]:
        """The rules that realise ``spec`` (validated: a bad spec is INVALID_SPEC, never a half-made rule)."""
        if not _KEY_RE.match(spec.key or ""):
            raise _invalid(f"forward key {spec.key!r}: lowercase letters, digits and -")
        if not _BRIDGE_RE.match(spec.bridge or ""):
            raise _invalid(f"bridge {spec.bridge!r} is not an interface name")
        public = _address(spec.public_ip, "public address")
        private = _address(spec.private_ip, "private address")
        if spec.protocol == "all":
            rules = [
                Rule("nat", self.dnat, ("-d", f"{public}/32", "-j", "DNAT", "--to-destination", private)),
                Rule(
                    "filter",
                    self.fwd,
                    ("-d", f"{private}/32", "-o", spec.bridge, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"),
                ),
            ]
            outwards = ("-s", f"{private}/32")
            if spec.private_cidr:
                try:
                    subnet = ipaddress.IPv4Network(spec.private_cidr, strict=False)
                except ValueError as exc:
                    raise _invalid(f"private CIDR {spec.private_cidr!r} is invalid") from exc
                # Traffic inside the guest's own network keeps the guest's address.
                outwards += ("!", "-d", str(subnet))
            rules.append(Rule("nat", self.snat, (*outwards, "-j", "SNAT", "--to-source", public)))
            return rules
        if spec.protocol not in ("tcp", "udp"):
            raise _invalid(f"protocol must be tcp, udp or all, not {spec.protocol!r}")
        public_port = _port(spec.public_port, "public port")
        private_port = _port(spec.private_port, "private port")
        proto = ("-p", spec.protocol, "-m", spec.protocol)
        return [
            Rule(
                "nat",
                self.dnat,
                ("-d", f"{public}/32", *proto, "--dport", str(public_port))
                + ("-j", "DNAT", "--to-destination", f"{private}:{private_port}"),
                top=True,
            ),
            Rule(
                "filter",
                self.fwd,
                ("-d", f"{private}/32", "-o", spec.bridge, *proto, "--dport", str(private_port))
                + ("-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"),
                top=True,
            ),
        ]

    # ---- running iptables --------------------------------------------------------------

    def _run(self, table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        command = [*inside, self._iptables, "-w", "5", "-t", table, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except FileNotFoundError as exc:
            raise DriverError(
                f"{self._iptables} is not installed on this host", permanent=True, code=ErrorCode.UNSUPPORTED
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise DriverError(f"{shlex.join(command)} timed out", permanent=False, code=ErrorCode.TIMEOUT) from exc
        if check and done.returncode != 0:
            message = f"{shlex.join(command)} failed: {(done.stderr or done.stdout).strip()}"
            if done.returncode == _EXIT_RESOURCE:
                raise DriverError(message, permanent=False, code=ErrorCode.BUSY)
            raise DriverError(message, permanent=True, code=ErrorCode.ERROR)
        return done

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer per host: the builtin chains' order is shared by every worker process."""
        with _thread_lock, open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _listing(self) -> dict[str, list[str]]:
        """Both tables as ``iptables -S`` prints them: two calls for everything a change needs.

        Whole tables are listed: iptables-nft answers for a missing chain with an error that
        does not say it is missing ("incompatible")."""
        return {table: self._run(table, "-S").stdout.splitlines() for table in ("nat", "filter")}

    @staticmethod
    def _chain_lines(listing: dict[str, list[str]], table: str, chain: str) -> list[str] | None:
        """The chain's rules; None when the chain does not exist."""
        lines = listing[table]
        if chain not in _BUILTINS and f"-N {chain}" not in lines:
            return None
        return [line for line in lines if line.startswith(f"-A {chain} ")]

    @property
    def _chains(self) -> tuple[tuple[str, str], ...]:
        return (("nat", self.dnat), ("nat", self.snat), ("filter", self.fwd))

    def _ensure(self, listing: dict[str, list[str]]) -> bool:
        """Our chains exist and are jumped to ahead of every rule that is not a campus jump;
        whether anything had to change (the listing is stale then)."""
        changed = False
        for table, chain in self._chains:
            if self._chain_lines(listing, table, chain) is None:
                done = self._run(table, "-N", chain, check=False)
                if done.returncode != 0 and self._chain_lines(self._listing(), table, chain) is None:
                    self._run(table, "-N", chain)  # raises with the message
                changed = True
        for table, builtin, ours in self._jumps:
            jump = f"-A {builtin} -j {ours}"
            lines = self._chain_lines(listing, table, builtin) or []
            positions = [i for i, line in enumerate(lines) if line == jump]
            # Jumps of other prefixes may stay ahead of ours; libvirt's (or anyone's) rules may not.
            foreign = next((i for i, line in enumerate(lines) if not _is_campus_jump(line, builtin)), len(lines))
            if len(positions) == 1 and positions[0] < foreign:
                continue
            for _ in positions:
                self._run(table, "-D", builtin, "-j", ours)
            self._run(table, "-I", builtin, "1", "-j", ours)
            changed = True
        return changed

    def present(self, listing: dict[str, list[str]] | None = None) -> list[Present]:
        """Every rule in our chains that carries a campus comment."""
        listing = listing or self._listing()
        found = []
        for table, chain in self._chains:
            for line in self._chain_lines(listing, table, chain) or []:
                argv = shlex.split(line)[2:]
                comment = _comment_of(argv)
                if comment is None:
                    continue
                found.append(Present(table, chain, comment[0], comment[1], tuple(argv)))
        return found

    # ---- the operations the driver offers -----------------------------------------------

    def apply(self, spec: ForwardSpec) -> str:
        """Make the host hold exactly ``spec``'s rules under its key: "added", "changed" or "unchanged"."""
        return self.apply_rules(spec.key, self.rules(spec))

    def apply_rules(self, key: str, wanted: list[Rule]) -> str:
        """Make the host hold exactly ``wanted`` (rules in our chains) under ``key``."""
        if not _KEY_RE.match(key or ""):
            raise _invalid(f"rule key {key!r}: lowercase letters, digits and -")
        ours = {chain for _table, chain in self._chains}
        if any(rule.chain not in ours for rule in wanted):
            raise _invalid(f"rules of {key} must go into the chains {sorted(ours)}")
        with self._locked():
            listing = self._listing()
            if self._ensure(listing):
                listing = self._listing()
            mine = [p for p in self.present(listing) if p.key == key]
            digests = {r.digest for r in wanted}
            kept: set[str] = set()
            changed = False
            for rule in mine:
                if rule.digest in digests and rule.digest not in kept:
                    kept.add(rule.digest)
                    continue
                self._run(rule.table, "-D", rule.chain, *rule.argv)
                changed = True
            for rule in wanted:
                if rule.digest in kept:
                    continue
                comment = ("-m", "comment", "--comment", f"{_COMMENT}:{key}:{rule.digest}")
                where = ("-I", rule.chain, "1") if rule.top else ("-A", rule.chain)
                self._run(rule.table, *where, *rule.args, *comment)
                changed = True
        if not changed:
            return "unchanged"
        return "added" if not mine else "changed"

    def remove(self, key: str) -> bool:
        """Drop every rule of ``key``; whether there was any."""
        with self._locked():
            mine = [p for p in self.present() if p.key == key]
            for rule in mine:
                self._run(rule.table, "-D", rule.chain, *rule.argv)
        return bool(mine)

    def keys(self) -> set[str]:
        return {p.key for p in self.present()}

    def teardown(self) -> None:
        """Remove our jumps and chains altogether (an endpoint taken out of service, a test's cleanup)."""
        with self._locked():
            listing = self._listing()
            for table, builtin, ours in self._jumps:
                for line in self._chain_lines(listing, table, builtin) or []:
                    if line == f"-A {builtin} -j {ours}":
                        self._run(table, "-D", builtin, "-j", ours, check=False)
            for table, chain in self._chains:
                if self._chain_lines(listing, table, chain) is not None:
                    self._run(table, "-F", chain)
                    self._run(table, "-X", chain)


def _is_campus_jump(line: str, builtin: str) -> bool:
    parts = line.split()
    return (
        len(parts) == 4
        and parts[:3] == ["-A", builtin, "-j"]
        and parts[3].rsplit("-", 1)[-1] in ("DNAT", "SNAT", "FWD")
        and _PREFIX_RE.match(parts[3].rsplit("-", 1)[0]) is not None
    )


def _comment_of(argv: list[str]) -> tuple[str, str] | None:
    """(key, digest) of a rule's campus comment, None for any other rule."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "--comment":
            parts = argv[i + 1].split(":")
            if len(parts) == 3 and parts[0] == _COMMENT:
                return parts[1], parts[2]
    return None

"""Elastic IPs and port forwards: the host firewall's rules (hostfw) in front of libvirt's NAT networks."""

from __future__ import annotations

from .. import hostfw
from ..base import DriverError, ErrorCode, ForwardSpec


class Forwards:
    url: str
    _firewall_prefix: str

    def _host_firewall(self) -> hostfw.HostFirewall:
        """The host's iptables, reachable only when the endpoint is this machine's own daemon."""
        if not hostfw.is_local_uri(self.url):
            raise DriverError(
                f"host firewall rules (elastic IPs, port forwards) can only be applied on the portal's own "
                f"host (qemu:///system); {self.url} is not it",
                permanent=True,
                code=ErrorCode.UNSUPPORTED,
            )
        return hostfw.HostFirewall(self._firewall_prefix)

    def forward_set(self, spec: ForwardSpec) -> str:
        """Put ``spec``'s DNAT/SNAT/accept rules in place (idempotent): "added", "changed" or "unchanged"."""
        return self._host_firewall().apply(spec)

    def forward_remove(self, key: str) -> bool:
        """Remove the rules of ``key``; whether there were any."""
        return self._host_firewall().remove(key)

    def forward_keys(self) -> set[str]:
        """The keys of every forward whose rules are on the host."""
        return self._host_firewall().keys()

"""Network orchestration: pushes network's data (networks, IP/MAC bindings, security groups) to hypervisors.

This package re-exports what callers use (``networking.desktop_nics_allocate(...)``); its modules are
``specs`` (names and specs), ``bindings`` (a desktop's NICs where it runs), ``dhcp`` (the periodic
repair), ``filters`` (security groups), ``forwarding`` (elastic IPs, port forwards), ``gateway``
(gateways on network nodes, run by their agents) and ``hooks``
(network's hooks, registered by ``ComputeConfig.ready``).

network/ holds the data and rules; compute makes every hypervisor call (shared/STYLE.md),
so this package turns network's rows into driver calls:

- ``desktop_nics_allocate(desktop)`` at desktop creation: IP and MAC from network's IPAM;
- ``desktop_network_prepare(desktop, driver)`` before the VM is created on its endpoint:
  the libvirt network, the nwfilters and the DHCP host entries there, and the NicSpecs;
- ``desktop_bindings_push(desktop)`` wherever the desktop runs now (after an evacuation
  or migration the binding follows it, from the database alone; the old host's entry is
  removed when that host answers, else by the next sync);
- ``desktop_bindings_release(desktop)`` when it is deleted;
- ``dhcp_sync()`` the periodic repair: each endpoint's DHCP hosts are compared with what
  the database says should be there, missing ones added, stale ones removed, all reported;
- ``security_group_apply(group)`` redefines the group's nwfilter wherever it is used
  (libvirt updates running VMs live);
- ``forwarding_apply(eip)`` elastic IPs and port forwards: on a local endpoint in the host firewall
  of the portal's own host; on a registered host asked of its network node's agent, which holds the
  router network's gateway, SNAT and DNAT in a namespace (``gateway``); ``forwarding_sync()``
  repairing them.

Where the desktop runs is compute's knowledge (``Desktop.endpoint``); which endpoints
hold which network is network's (``NetworkDeployment``). libvirt object names carry an
endpoint-configurable prefix (options ``network_prefix``, ``bridge_prefix``,
``filter_prefix``, and ``firewall_prefix`` for the host-firewall chains) so that several
endpoints can share one test daemon.
"""

from compute.networking.bindings import (
    desktop_addresses,
    desktop_bindings_push,
    desktop_bindings_release,
    desktop_failover,
    desktop_network_prepare,
    desktop_nics_allocate,
    desktop_nics_observed,
    network_ensure_on,
    network_remove,
    nic_specs,
)
from compute.networking.dhcp import addresses_of_gone_desktops_release, dhcp_sync, seed_bindings
from compute.networking.filters import desktop_filters_apply, security_group_apply, security_groups_sync
from compute.networking.forwarding import (
    eip_key,
    forward_key,
    forwarding_apply,
    forwarding_of_desktop_apply,
    forwarding_sync,
)
from compute.networking.hooks import register_hooks
from compute.networking.specs import (
    BOUND_STATES,
    BRIDGE_PREFIX,
    FILTER_PREFIX,
    NETWORK_PREFIX,
    bridge_name,
    filter_name,
    filters_supported,
    group_rules,
    libvirt_network_name,
    network_spec,
    nic_network_name,
    nwfilter_spec,
    with_nics,
)

__all__ = [
    "BOUND_STATES",
    "BRIDGE_PREFIX",
    "FILTER_PREFIX",
    "NETWORK_PREFIX",
    "addresses_of_gone_desktops_release",
    "bridge_name",
    "desktop_addresses",
    "desktop_bindings_push",
    "desktop_bindings_release",
    "desktop_failover",
    "desktop_filters_apply",
    "desktop_network_prepare",
    "desktop_nics_allocate",
    "desktop_nics_observed",
    "dhcp_sync",
    "eip_key",
    "filter_name",
    "filters_supported",
    "forward_key",
    "forwarding_apply",
    "forwarding_of_desktop_apply",
    "forwarding_sync",
    "group_rules",
    "libvirt_network_name",
    "network_ensure_on",
    "network_remove",
    "network_spec",
    "nic_network_name",
    "nic_specs",
    "nwfilter_spec",
    "register_hooks",
    "security_group_apply",
    "security_groups_sync",
    "seed_bindings",
    "with_nics",
]

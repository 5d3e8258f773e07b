"""HA of the compute nodes: a silent host is detected, fenced through its BMC, and its desktops restart elsewhere.

``detection`` (libvirt probes; with the agent's heartbeats, when a host was last seen), ``states`` (the
host's HA state machine, pure), ``fencing`` (power-off over IPMI, ``compute/drivers/ipmi.py``),
``restart`` (each HA desktop on another host of the cluster with its MAC, IP, security groups, data disks
and elastic IPs), ``services`` (the audited transitions, the cluster's HA settings, a host's BMC, clearing
a host) and ``round`` (one pass of all three, run every few seconds by ``compute.tasks.ha.ha_tick``).
"""

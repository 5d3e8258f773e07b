"""Network: tenant networks, subnets, IP/MAC bindings pushed to DHCP, security groups."""

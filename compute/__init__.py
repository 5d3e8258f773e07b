"""Compute: sites, hypervisor endpoints, images, flavors, desktops and their lifecycle, course pools, consoles."""

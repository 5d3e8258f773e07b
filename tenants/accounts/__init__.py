"""Account management for tenant admins and the security admin: pages, API, services, staff import."""

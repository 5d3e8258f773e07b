"""Tenants: the tenant tree, accounts, memberships and roles, courses, quotas and approvals."""

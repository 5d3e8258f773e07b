"""The /api/v1/ skeleton: token login, the caller's profile, auditors' read-only rule and the per-app routers."""

"""The /api/v1/ skeleton: error format, pagination, auth and the per-app routers."""

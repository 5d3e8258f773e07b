"""Admin views of campus sign-in state (read mostly; writes go through the account pages)."""

from django.contrib import admin

from tenants.identity.models import AccountState, ExternalIdentity, IdentityConflict, TenantDirectory

admin.site.register(ExternalIdentity, list_display=["user", "source", "subject", "number", "last_seen_at"])
admin.site.register(AccountState, list_display=["user", "kind", "last_login_source", "local_password_allowed"])
admin.site.register(TenantDirectory, list_display=["tenant", "departments", "place_new_staff", "staff_role"])
admin.site.register(IdentityConflict, list_display=["source", "subject", "number", "tenant", "occurred_at"])

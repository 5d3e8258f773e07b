from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("租户")

    def ready(self):
        from audit.hooks import register_actor_describer, register_role_labels
        from tenants.compliance import register as register_audit_hooks
        from tenants.roles import ALL_ROLES
        from tenants.selectors import describe_actor

        register_actor_describer(describe_actor)
        register_role_labels(ALL_ROLES)
        register_audit_hooks()  # roles, audit scope and the 等保 account checks (tenants/compliance.py)

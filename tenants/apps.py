from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("租户")

    def ready(self):
        from audit.hooks import register_actor_describer
        from tenants.compliance import register as register_audit_hooks
        from tenants.selectors import describe_actor

        register_actor_describer(describe_actor)
        register_audit_hooks()  # roles, audit scope and the 等保 account checks (tenants/compliance.py)

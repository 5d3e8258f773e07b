from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("租户")

    def ready(self):
        from audit.hooks import register_actor_describer
        from tenants.selectors import describe_actor

        register_actor_describer(describe_actor)

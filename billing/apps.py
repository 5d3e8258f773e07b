from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("计费")

    def ready(self):
        # compute tells billing about billable state changes and asks before creating desktops
        # through hooks billing registers here (STYLE.md: a lower app never imports a higher one).
        # network tells it when an elastic IP is allocated or released, the same way.
        from billing import services
        from compute import hooks
        from network import hooks as network_hooks

        hooks.register_desktop_observer(services.desktop_changed, many=services.desktops_changed)
        hooks.register_volume_observer(services.volume_changed)
        hooks.register_create_check(services.budget_enforce)
        network_hooks.register("elastic_ip_held", services.elastic_ip_changed)

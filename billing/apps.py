from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("计费")

    def ready(self):
        # compute tells billing about billable state changes and asks before creating desktops
        # through hooks billing registers here (STYLE.md: a lower app never imports a higher one).
        from billing import services
        from compute import hooks

        hooks.register_desktop_observer(services.desktop_changed, many=services.desktops_changed)
        hooks.register_volume_observer(services.volume_changed)
        hooks.register_create_check(services.budget_enforce)

"""The compute app: at start-up it registers its handlers of network's hooks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = _("计算")

    def ready(self):
        # network tells compute what to push to the hypervisors through its hooks (network may not
        # import compute); registered here, in web and worker alike, rather than on some import.
        from compute import compliance, networking

        networking.register_hooks()
        compliance.register()  # the 等保 剩余信息保护 check of the desktops' disks

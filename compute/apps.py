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
        _register_request_hooks()
        compliance.register()  # the 等保 剩余信息保护 check of the desktops' disks


def _register_request_hooks() -> None:
    """A personal desktop request is planned and made by compute (tenants never imports compute);
    the request hears from the desktop's own progress."""
    from compute.hooks import register_desktop_observer
    from compute.services import request_desktops as requests
    from tenants.hooks import register_fulfiller, register_planner
    from tenants.models import RequestKind

    register_planner(RequestKind.PERSONAL_DESKTOP, requests.plan_personal_desktop)
    register_fulfiller(RequestKind.PERSONAL_DESKTOP, requests.fulfil_desktop_request)
    register_desktop_observer(requests.desktop_request_observer)

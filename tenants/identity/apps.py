from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IdentityConfig(AppConfig):
    name = "tenants.identity"
    label = "identity"
    verbose_name = _("统一身份认证")

    def ready(self):
        from tenants.identity import compliance, signals

        signals.connect()
        compliance.register()  # the 等保 checks that every way in is covered

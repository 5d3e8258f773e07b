from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = _("计算")

    def ready(self):
        # Network's orchestration: registers network's hooks and loads its Celery tasks, in web
        # and worker alike.
        from compute import networking  # noqa: F401

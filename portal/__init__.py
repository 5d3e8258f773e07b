"""CampusCloud: the Django project (settings, URLs, Celery app) and the web UI shell."""

from portal.celery import app as celery_app

__all__ = ("celery_app",)

"""Celery task of the inventory: the periodic reconciliation of every endpoint (portal/celery.py's beat)."""

from celery import shared_task

from compute.reconcile import reconcile


@shared_task(bind=True, acks_late=True)
def reconcile_all(self):
    return reconcile()

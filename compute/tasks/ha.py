"""HA's periodic task: one round of detection → fencing → restart (compute/ha/round.py), every few seconds."""

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def ha_tick() -> dict:
    from compute.ha.round import ha_round

    report = ha_round()
    if report["fenced"] or report["restarted"]:
        log.warning("HA round: %s", report)
    return report

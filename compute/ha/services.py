"""HA's writes: the host's HA transitions (each audited, under the host's lock), the cluster's HA
settings, a host's BMC, and an admin clearing a fenced host."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.models import AuditEvent
from audit.services import event_record
from common.errors import Conflict, Forbidden, InvalidInput
from common.tasks import enqueue
from compute import locks
from compute.errors import ComputeError
from compute.ha import selectors, states
from compute.models import Cluster, ClusterHa, Desktop, HaIncident, HaState, Host
from compute.services.rules import require_system_admin

if TYPE_CHECKING:
    from tenants.models import User

log = logging.getLogger("compute.ha")


def _move(host: Host, to: str, *, now: datetime, reason: str = "") -> None:
    host.ha_state, host.ha_since, host.ha_reason = to, now, reason
    host.save(update_fields=["ha_state", "ha_since", "ha_reason", "updated_at"])


def host_suspect(*, host_id: int, seen: datetime | None, now: datetime) -> bool:
    """ok → suspect: the host was silent for the detection time. An incident opens."""
    with transaction.atomic():
        host = locks.host_lock(host_id)
        if host.ha_state != HaState.OK:
            return False
        _move(host, HaState.SUSPECT, now=now)
        HaIncident.objects.create(host=host, cluster_id=host.endpoint.cluster_id, last_seen_at=seen, suspect_at=now)
        event_record(
            action=Action.HA_HOST_SUSPECT,
            target=host,
            result=AuditEvent.Result.FAILURE,
            detail={"last_seen": seen.isoformat() if seen else None},
        )
    log.warning("HA: host %s is silent since %s: suspect", host.name, seen)
    return True


def host_recover(*, host_id: int, now: datetime) -> bool:
    """suspect → ok: the host answered again before anyone began to fence it."""
    with transaction.atomic():
        host = locks.host_lock(host_id)
        if host.ha_state != HaState.SUSPECT:
            return False
        _move(host, HaState.OK, now=now)
        incident = locks.ha_incident_open_lock(host.pk)
        if incident is not None:
            incident.outcome, incident.finished_at = HaIncident.Outcome.RECOVERED, now
            incident.save(update_fields=["outcome", "finished_at"])
    return True


def host_fence_claim(*, host_id: int, now: datetime) -> Host | None:
    """Claim the host for fencing (→ fencing) when its state calls for it; None when another round has it."""
    with transaction.atomic():
        host = locks.host_lock(host_id)
        wanted = states.step(host.ha_state, is_silent=True, since=host.ha_since, now=now)
        if wanted != states.Step.FENCE:
            return None
        _move(host, HaState.FENCING, now=now)
    return host


def host_fence_result(*, host_id: int, error: str = "") -> Host:
    """fencing → fenced (the BMC cut the power), or → fence_failed with the reason: no restart, an alarm."""
    now = timezone.now()
    with transaction.atomic():
        host = locks.host_lock(host_id)
        incident = locks.ha_incident_open_lock(host.pk)
        if not error:
            _move(host, HaState.FENCED, now=now)
            if incident is not None:
                incident.fenced_at, incident.fence_error, incident.outcome = now, "", HaIncident.Outcome.OPEN
                incident.save(update_fields=["fenced_at", "fence_error", "outcome"])
            event_record(action=Action.HA_HOST_FENCED, target=host, detail={"bmc": host.bmc_address})
            return host
        reason = _("主机 %(host)s 无法隔离：桌面未重启（%(error)s）") % {"host": host.name, "error": error}
        _move(host, HaState.FENCE_FAILED, now=now, reason=reason)
        if incident is not None:
            incident.outcome, incident.fence_error = HaIncident.Outcome.FENCE_FAILED, error
            incident.save(update_fields=["outcome", "fence_error"])
        event_record(
            action=Action.HA_FENCE_FAILED,
            target=host,
            result=AuditEvent.Result.FAILURE,
            reason=error[:500],
            detail={"bmc": host.bmc_address},
        )
    _alarm(host, reason)
    return host


def _alarm(host: Host, reason: str) -> None:
    """An ERROR log line (collected by the log system) and mail to the admins."""
    log.error("HA ALARM: %s", reason)
    if settings.ADMINS:
        mail_admins(f"HA: host {host.name} could not be fenced", reason, fail_silently=True)


def incident_finish(*, host_id: int, restarted: list[dict], unplaced: list[dict]) -> HaIncident | None:
    """The fenced host's desktops were handled: the incident records which run where and which could not."""
    with transaction.atomic():
        incident = locks.ha_incident_open_lock(host_id)
        if incident is None:
            return None
        incident.restarted = [*incident.restarted, *restarted]
        incident.unplaced = unplaced
        incident.outcome = HaIncident.Outcome.PARTIAL if unplaced else HaIncident.Outcome.RESTARTED
        incident.finished_at = timezone.now()
        incident.save(update_fields=["restarted", "unplaced", "outcome", "finished_at"])
    return incident


def incident_retried(*, incident_id: int, restarted: list[dict], unplaced: list[dict]) -> HaIncident:
    """A retry of the incident's unplaced desktops: those restarted join the list, the rest stay with their reason."""
    with transaction.atomic():
        incident = locks.ha_incident_lock(incident_id)
        incident.restarted = [*incident.restarted, *restarted]
        gone = {entry["desktop"] for entry in restarted}
        incident.unplaced = [entry for entry in unplaced if entry["desktop"] not in gone]
        incident.outcome = HaIncident.Outcome.PARTIAL if incident.unplaced else HaIncident.Outcome.RESTARTED
        incident.save(update_fields=["restarted", "unplaced", "outcome"])
    return incident


def incident_progress(*, host_id: int, restarted: list[dict]) -> None:
    """Desktops restarted so far (a round may be cut short; the next one goes on)."""
    with transaction.atomic():
        incident = locks.ha_incident_open_lock(host_id)
        if incident is not None and restarted:
            incident.restarted = [*incident.restarted, *restarted]
            incident.save(update_fields=["restarted"])


def host_ha_clear(*, actor: User | None, host: Host) -> Host:
    """An admin puts a suspect, fenced or unfenceable host back into service (it must be running again)."""
    if actor is not None:
        require_system_admin(actor)
    now = timezone.now()
    with transaction.atomic():
        host = locks.host_lock(host.pk)
        if not states.may_clear(host.ha_state):
            raise Conflict(
                _("主机“%(host)s”当前没有需要解除的高可用状态。") % {"host": host.name},
                code=ComputeError.HA_NOTHING_TO_CLEAR,
                detail={"ha_state": host.ha_state},
            )
        before = host.ha_state
        _move(host, HaState.OK, now=now)
        incident = locks.ha_incident_open_lock(host.pk)
        if incident is not None:
            if incident.outcome == HaIncident.Outcome.OPEN:
                incident.outcome = HaIncident.Outcome.CLEARED
            incident.finished_at = now
            incident.save(update_fields=["outcome", "finished_at"])
        event_record(action=Action.HA_HOST_CLEARED, actor=actor, target=host, detail={"from": before})
        # Its desktops that now run elsewhere are still defined there: they go before it takes any work.
        enqueue("compute.tasks.ha.host_stale_copies_remove", host.pk, queue=host.endpoint.site.celery_queue)
    return host


def ha_settings_update(
    *, actor: User | None, cluster: Cluster, enabled: bool, detection_seconds: int | None, fencing: str
) -> ClusterHa:
    """A cluster's HA: on/off, the detection time (empty: the platform default), the fencing method."""
    if actor is not None:
        require_system_admin(actor)
    if detection_seconds is not None and not 5 <= detection_seconds <= 600:
        raise InvalidInput(
            _("故障检测时间应在 5 到 600 秒之间。"),
            code=ComputeError.HA_SETTINGS_INVALID,
            detail={"field": "detection_seconds"},
        )
    if fencing not in ClusterHa.Fencing.values:
        raise InvalidInput(_("不支持的隔离方式。"), code=ComputeError.HA_SETTINGS_INVALID, detail={"field": "fencing"})
    with transaction.atomic():
        ha = locks.cluster_ha_lock(cluster.pk)
        before = {"enabled": ha.enabled, "detection_seconds": ha.detection_seconds, "fencing": ha.fencing}
        ha.enabled, ha.detection_seconds, ha.fencing = enabled, detection_seconds, fencing
        ha.save()
        after = {"enabled": enabled, "detection_seconds": detection_seconds, "fencing": fencing}
        event_record(
            action=Action.HA_SETTINGS_CHANGED, actor=actor, target=cluster, detail={"from": before, "to": after}
        )
    return ha


def host_bmc_set(*, actor: User | None, host: Host, address: str, port: int, username: str, password: str) -> Host:
    """The host's BMC for fencing; an empty password keeps the one recorded. The password is stored encrypted."""
    if actor is not None:
        require_system_admin(actor)
    if not address or not username or not 1 <= port <= 65535 or len(username) > 16:
        raise InvalidInput(
            _("请填写 BMC 地址、端口（1-65535）和用户名（不超过 16 个字符）。"), code=ComputeError.HA_BMC_INVALID
        )
    with transaction.atomic():
        host = locks.host_lock(host.pk)
        host.bmc_address, host.bmc_port, host.bmc_username = address.strip(), port, username
        if password:
            host.set_bmc_password(password)
        host.save(update_fields=["bmc_address", "bmc_port", "bmc_username", "bmc_password_encrypted", "updated_at"])
        event_record(
            action=Action.HOST_BMC_CHANGED,
            actor=actor,
            target=host,
            detail={"address": host.bmc_address, "port": port, "username": username, "new_password": bool(password)},
        )
    return host


def desktop_ha_set(*, actor: User | None, desktop: Desktop, enabled: bool | None) -> Desktop:
    """Whether the desktop restarts elsewhere when its host fails; None: its cluster's default (on with shared
    storage). The desktop's admins decide (system or tenant admins), not its owner or teacher."""
    if actor is not None and not selectors.ha_flag_settable_by(actor, desktop):
        raise Forbidden(_("只有系统管理员或本单位管理员可以设置桌面的高可用。"), code=ComputeError.HA_ADMIN_ONLY)
    with transaction.atomic():
        row = locks.desktop_lock(desktop.pk)
        before = row.ha_enabled
        row.ha_enabled = enabled
        row.save(update_fields=["ha_enabled", "updated_at"])
        event_record(
            action=Action.HA_DESKTOP_FLAG_CHANGED,
            actor=actor,
            target=row,
            tenant=row.tenant,
            detail={"from": before, "to": enabled},
        )
    return row

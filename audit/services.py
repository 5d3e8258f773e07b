"""Writes of the audit app: recording events, policy changes, manual findings, reports, archives."""

from __future__ import annotations

import contextlib
import contextvars
import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit import chain, context, hooks, policy
from audit.actions import Action
from audit.errors import AuditError
from audit.models import (
    AuditArchive,
    AuditEvent,
    ChainVerification,
    ComplianceReport,
    ManualAssessment,
    SecurityPolicy,
    canonical_json,
)
from common.errors import Forbidden, InvalidInput

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


AUDIT_WRITER_ROLES = {"auditor", "audit_admin"}


def _clip(value, length: int) -> str:
    # NUL separates fields in the chain's canonical form (audit.chain.canonical): never stored.
    return str(value or "").replace("\x00", "")[:length]


def event_record(
    *,
    action: str,
    actor: AbstractBaseUser | None = None,
    target: models.Model | None = None,
    tenant: models.Model | str | None = None,
    result: str = AuditEvent.Result.SUCCESS,
    reason: str = "",
    detail: dict | None = None,
    actor_username: str = "",
    object_type: str = "",
    object_id: str = "",
    object_name: str = "",
) -> AuditEvent:
    """Record one event in the caller's transaction: if it cannot be written, the change fails too.

    `actor` is a user (or None for the system); `target` any model instance (its type, id and
    name are kept as they are now). `actor_username` / `object_*` describe what has no
    instance (a failed login for an unknown name, an export).
    """
    ctx = context.current()
    role, actor_tenant = hooks.describe_actor(actor)
    has_meta = target is not None and hasattr(target, "_meta")
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_id=getattr(actor, "pk", None),
        actor_username=_clip(getattr(actor, "username", "") or actor_username, 150),
        actor_role=_clip(role, 50),
        tenant_slug=_clip(
            getattr(tenant, "slug", "") or (tenant if isinstance(tenant, str) else "") or actor_tenant, 50
        ),
        source_ip=_clip(ctx.source_ip, 45),
        user_agent=_clip(ctx.user_agent, 255),
        request_id=_clip(ctx.request_id, 64),
        action=_clip(action, 64),
        object_type=_clip(object_type or (target._meta.label_lower if has_meta else ""), 64),
        object_id=_clip(object_id or (getattr(target, "pk", "") if target is not None else ""), 64),
        object_name=_clip(object_name or (str(target) if target is not None else ""), 255),
        result=str(result),
        reason=_clip(reason, 500),
        detail=json.loads(canonical_json(detail)),
    )
    batch = _batch.get()
    if batch is not None:
        batch.append(event)
        return event
    return chain.append(event)


# The events recorded inside ``events_batched`` in this thread (None: outside one).
_batch: contextvars.ContextVar[list[AuditEvent] | None] = contextvars.ContextVar("audit_batch", default=None)


@contextlib.contextmanager
def events_batched() -> Iterator[None]:
    """Events recorded inside the block join the chain together when it ends, in the order recorded:
    one lock of the chain's head and one insert instead of three queries each (a pool's seats, a
    desktop's provisioning with its quota). The caller's transaction must enclose the block, so an
    event still commits or rolls back with its change; an exception drops the events with the change.
    Inside, a recorded event has no id yet. A nested block joins the outer one."""
    if _batch.get() is not None:
        yield
        return
    events: list[AuditEvent] = []
    token = _batch.set(events)
    try:
        yield
    finally:
        _batch.reset(token)
    if events:
        chain.append_many(events, savepoint=False)


# --- chain verification and archive -------------------------------------------------------


def chain_verify(*, source: str = "command") -> chain.VerifyResult:
    """Verify the whole chain and keep the result (the status page and the alert read it)."""
    result = chain.verify()
    ChainVerification.objects.create(
        ok=result.ok,
        checked=result.checked,
        first_bad=result.first_bad,
        reason=result.reason[:255],
        duration_ms=int(result.seconds * 1000),
        source=source,
    )
    return result


def archive_create(*, older_than_days: int | None = None, directory: Path) -> AuditArchive | None:
    """Write events older than the retention period to a gzip file signed with the chain key.

    Nothing is deleted: the triggers refuse it. The file, its SHA-256 and HMAC, and the last
    archived hash are recorded, so an operator who later removes archived rows (with the
    triggers lifted by a DBA) leaves a chain that still verifies from the archive on.
    """
    retention = policy.current_policy().audit_retention_days
    days = max(older_than_days or retention, retention)
    before = timezone.now() - timedelta(days=days)
    last = AuditArchive.objects.order_by("-last_id").first()
    start = last.last_id if last else 0
    queryset = (
        AuditEvent.objects.filter(id__gt=start, occurred_at__lt=before)
        .order_by("id")
        .values_list(*chain.HASHED_FIELDS, "hash")
    )
    lines, first_id, last_id, last_hash = [], None, None, None
    for row in queryset.iterator(chunk_size=5000):
        record = dict(zip((*chain.HASHED_FIELDS, "hash"), row, strict=True))
        record["occurred_at"] = record["occurred_at"].isoformat()
        lines.append(canonical_json(record))
        first_id = first_id or record["id"]
        last_id, last_hash = record["id"], record["hash"]
    if not lines:
        return None
    data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    digest, signature = chain.file_signature(data)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"audit-{first_id:012d}-{last_id:012d}.jsonl.gz"
    (directory / name).write_bytes(data)
    (directory / f"{name}.sig").write_text(f"sha256={digest}\nhmac-sha256={signature}\nlast_hash={last_hash}\n")
    with transaction.atomic():
        archive = AuditArchive.objects.create(
            file_name=name,
            first_id=first_id,
            last_id=last_id,
            count=len(lines),
            last_hash=last_hash,
            sha256=digest,
            signature=signature,
            before=before,
        )
        event_record(
            action=Action.AUDIT_ARCHIVED,
            target=archive,
            detail={"first_id": first_id, "last_id": last_id, "count": len(lines), "file": name},
        )
    return archive


# --- security policy -----------------------------------------------------------------------


def policy_update(*, actor: AbstractBaseUser, **changes: int) -> SecurityPolicy:
    """The security admin changes thresholds; each must stay within the floor. Audited with before/after."""
    if "security_admin" not in hooks.roles_of(actor):
        raise Forbidden(_("只有安全管理员可以修改安全策略。"), code=AuditError.SECURITY_ADMIN_ONLY)
    unknown = set(changes) - set(policy.EDITABLE)
    if unknown:
        raise InvalidInput(
            _("未知的策略项：%(names)s") % {"names": ", ".join(sorted(unknown))}, code=AuditError.UNKNOWN_POLICY_FIELD
        )
    bounds = policy.floor()
    errors = {}
    for name, value in changes.items():
        bound = bounds[name]
        if not isinstance(value, int) or value < bound.minimum or (bound.maximum is not None and value > bound.maximum):
            errors[name] = _("%(label)s 必须在 %(min)s 到 %(max)s 之间（平台底线）。") % {
                "label": bound.label,
                "min": bound.minimum,
                "max": bound.maximum,
            }
    if errors:
        raise InvalidInput(_("安全策略低于平台底线。"), code=AuditError.BELOW_PLATFORM_FLOOR, detail=errors)
    with transaction.atomic():
        row, _created = SecurityPolicy.objects.select_for_update().get_or_create(pk=1)
        before = {name: getattr(row, name) for name in policy.EDITABLE}
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_by = actor.username
        row.save()
        after = {name: getattr(row, name) for name in policy.EDITABLE}
        changed = {name: [before[name], after[name]] for name in policy.EDITABLE if before[name] != after[name]}
        event_record(action=Action.POLICY_CHANGED, actor=actor, target=row, detail={"changed": changed})
        transaction.on_commit(lambda: cache.delete(policy.CACHE_KEY))
    cache.delete(policy.CACHE_KEY)
    return row


# --- compliance ------------------------------------------------------------------------------


def manual_assessment_record(*, actor: AbstractBaseUser, check_id: str, status: str, evidence: str) -> ManualAssessment:
    """The security admin records the finding of a manual check, with its evidence."""
    from audit import compliance

    if "security_admin" not in hooks.roles_of(actor):
        raise Forbidden(_("只有安全管理员可以录入人工核查结果。"), code=AuditError.SECURITY_ADMIN_ONLY)
    check = compliance.check_get(check_id)
    if check is None or check.auto is not None:
        raise InvalidInput(_("该检查项不是人工核查项。"), code=AuditError.NOT_A_MANUAL_CHECK)
    if status not in compliance.Status.values:
        raise InvalidInput(_("未知的符合情况。"), code=AuditError.UNKNOWN_STATUS)
    if not evidence.strip():
        raise InvalidInput(_("请填写核查证据。"), code=AuditError.EVIDENCE_REQUIRED)
    with transaction.atomic():
        item, _created = ManualAssessment.objects.update_or_create(
            check_id=check_id, defaults={"status": status, "evidence": evidence.strip(), "updated_by": actor.username}
        )
        event_record(
            action=Action.COMPLIANCE_ASSESSED,
            actor=actor,
            object_type="compliance.check",
            object_id=check_id,
            object_name=str(check.indicator)[:255],
            detail={"status": status},
        )
    return item


def compliance_report_create(*, actor: AbstractBaseUser | None, level: int) -> ComplianceReport:
    """Run every check for `level` and keep the results as they are now."""
    from audit import compliance

    if actor is not None and not hooks.roles_of(actor) & (AUDIT_WRITER_ROLES | {"security_admin"}):
        raise Forbidden(_("只有审计员、审计管理员和安全管理员可以生成自查报告。"), code=AuditError.REPORT_FORBIDDEN)
    if level not in (2, 3):
        raise InvalidInput(_("等级只能是 2 或 3。"), code=AuditError.INVALID_LEVEL)
    results = compliance.run_checks(level)
    counts, rate = compliance.compliance_rate(results)
    with transaction.atomic():
        report = ComplianceReport.objects.create(
            level=level,
            created_by_id=getattr(actor, "pk", None),
            created_by_username=getattr(actor, "username", "") or "system",
            results=results,
            rate=rate,
            counts=counts,
        )
        event_record(
            action=Action.COMPLIANCE_REPORT_CREATED,
            actor=actor,
            target=report,
            detail={"level": level, "rate": str(rate), **counts},
        )
    return report


def export_record(*, actor: AbstractBaseUser, fmt: str, filters: dict, count: int) -> AuditEvent:
    return event_record(
        action=Action.EXPORT_MADE,
        actor=actor,
        object_type="audit.auditevent",
        object_name=_("审计日志导出（%(fmt)s）") % {"fmt": fmt.upper()},
        detail={"format": fmt, "filters": filters, "count": count},
    )


def search_record(*, actor: AbstractBaseUser, filters: dict, count: int) -> AuditEvent:
    return event_record(
        action=Action.AUDIT_SEARCHED,
        actor=actor,
        object_type="audit.auditevent",
        detail={"filters": filters, "count": count},
    )


def alert_chain_broken(result: chain.VerifyResult) -> None:
    """Raise the alarm: an ERROR log line (collected by the log system) and mail to the admins."""
    import logging

    from django.core.mail import mail_admins

    logging.getLogger("audit.chain").error(
        "AUDIT CHAIN BROKEN: first bad event %s (%s), %s events checked",
        result.first_bad,
        result.reason,
        result.checked,
    )
    if settings.ADMINS:
        mail_admins(
            "Audit chain verification failed",
            f"First bad event: {result.first_bad}\nReason: {result.reason}\nChecked: {result.checked}",
            fail_silently=True,
        )

"""Writes of the audit app: recording an event in the caller's transaction."""

from django.utils import timezone

from audit import context, hooks
from audit.models import AuditEvent


def event_record(
    *,
    action: str,
    actor=None,
    target=None,
    tenant=None,
    result: str = AuditEvent.Result.SUCCESS,
    reason: str = "",
    detail: dict | None = None,
) -> AuditEvent:
    """Record one event. Called inside the service's transaction: no event, no change."""
    ctx = context.current()
    role, actor_tenant = hooks.describe_actor(actor)
    return AuditEvent.objects.create(
        occurred_at=timezone.now(),
        actor_id=getattr(actor, "pk", None),
        actor_username=getattr(actor, "username", "") or "",
        actor_role=role,
        tenant_slug=getattr(tenant, "slug", "") or actor_tenant,
        source_ip=ctx.source_ip,
        user_agent=ctx.user_agent,
        request_id=ctx.request_id,
        action=str(action),
        object_type=target._meta.label_lower if target is not None and hasattr(target, "_meta") else "",
        object_id=str(getattr(target, "pk", "") or ""),
        object_name=str(target)[:255] if target is not None else "",
        result=result,
        reason=str(reason)[:500],
        detail=detail or {},
    )

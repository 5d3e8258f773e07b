"""The dashboard: what each role needs first, read through the apps' selectors.

Each panel is computed only for the roles that see it, so a student's dashboard costs a
student's queries and no one else's.
"""

from django.db.models import Count

from audit.selectors import can_read_audit, last_verification
from billing.selectors import can_read_billing, estimate_for
from compute.classroom.selectors import my_desktops, pool_list_for
from compute.models import Desktop, Endpoint
from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import request_list_for, request_queue_for

RECENT = 5


def _student(user) -> dict:
    return {"my_desktops": my_desktops(user)}


def _teacher(user) -> dict:
    return {
        "pools": list(pool_list_for(user).select_related("course")[:RECENT]),
        "my_requests": list(request_list_for(user).filter(requester=user)[:RECENT]),
    }


def _approver(user) -> dict:
    return {"queue_count": request_queue_for(user).count()}


def _finance(user) -> dict:
    drafts = estimate_for(user)
    return {"estimates": drafts}


def _auditor(user) -> dict:
    return {"chain": last_verification()}


def _sysadmin(user) -> dict:
    by_state = dict(Desktop.objects.exclude(state=Desktop.State.DELETED).values_list("state").annotate(n=Count("id")))
    return {
        # (label in the reader's language, count), in the order of the states
        "desktops_by_state": [(label, by_state[state]) for state, label in Desktop.State.choices if state in by_state],
        "endpoints": list(Endpoint.objects.select_related("site").order_by("site__slug", "name")[:20]),
    }


def panels_for(user, roles: set[str]) -> dict:
    context: dict = {}
    if TenantRole.STUDENT in roles:
        context.update(_student(user))
    if TenantRole.TEACHER in roles:
        context.update(_teacher(user))
    if roles & {TenantRole.TENANT_ADMIN, PlatformRole.SYSTEM_ADMIN}:
        context.update(_approver(user))
    if roles & {TenantRole.FINANCE} and can_read_billing(user):
        context.update(_finance(user))
    if roles & {TenantRole.AUDITOR, PlatformRole.AUDIT_ADMIN} and can_read_audit(user):
        context.update(_auditor(user))
    if PlatformRole.SYSTEM_ADMIN in roles:
        context.update(_sysadmin(user))
    return context

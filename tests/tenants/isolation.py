"""Objects of tenant `cs` for tests/api/test_isolation.py: a user of `me` must get a 404 on each."""

import datetime

from tenants.models import ApprovalRequest, Course, Membership, Quota, RequestKind


def _course(scenario):
    course, _ = Course.objects.get_or_create(
        tenant=scenario.tenant_a,
        code="CS101",
        defaults={
            "name": "计算机导论",
            "teacher": scenario.teacher,
            "term_start": datetime.date(2026, 9, 1),
            "term_end": datetime.date(2027, 1, 15),
        },
    )
    return {"id": course.pk}


def _membership(scenario):
    return {"id": Membership.objects.get(user=scenario.student, tenant=scenario.tenant_a).pk}


def _quota(scenario):
    quota = Quota.objects.create(key=f"tenant:{scenario.tenant_a.pk}", scope="tenant", tenant=scenario.tenant_a)
    return {"id": quota.pk}


def _request(scenario):
    request = ApprovalRequest.objects.create(
        tenant=scenario.tenant_a, requester=scenario.teacher, kind=RequestKind.PERSONAL_DESKTOP, title="t", vcpu=2
    )
    request.steps.create(order=1, approver_role="tenant_admin")
    return {"id": request.pk}


MAKERS = {
    "/api/v1/tenants/{slug}/": lambda scenario: {"slug": scenario.tenant_a.slug},
    "/api/v1/memberships/{id}/": _membership,
    "/api/v1/courses/{id}/": _course,
    "/api/v1/courses/{id}/roster/": _course,
    "/api/v1/courses/{id}/roster-import/": _course,
    "/api/v1/courses/{id}/class-times/": _course,
    "/api/v1/quotas/{id}/": _quota,
    "/api/v1/requests/{id}/": _request,
    "/api/v1/requests/{id}/approve/": _request,
    "/api/v1/requests/{id}/reject/": _request,
    "/api/v1/requests/{id}/cancel/": _request,
    "/api/v1/requests/{id}/retry/": _request,
}

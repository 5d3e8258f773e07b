"""The tenants API: the role matrix over every operation, behaviours through HTTP, constant query counts."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from common.errors import ErrorCode
from tenants import services
from tenants.errors import TenantsError
from tenants.models import ApprovalRequest, Course, Membership, Quota, RequestKind
from tenants.quotas import quota_set
from tests import factories
from tests.querycount import assert_constant_queries
from tests.sso.accounts import sso_account

ROLES = [
    "tenant_admin",
    "teacher",
    "student",
    "finance",
    "auditor",
    "stranger",
    "stranger_admin",
    "sysadmin",
    "secadmin",
    "auditadmin",
    "sso_student",  # created at a first CAS sign-in, then put on the roster: a student like any other
]


@pytest.fixture
def world(scenario, course):
    """The scenario, its CS101 course, a tenant quota of cs and a pending request of the teacher."""
    quota = Quota.objects.create(key=f"tenant:{scenario.tenant_a.pk}", scope="tenant", tenant=scenario.tenant_a)
    pending = ApprovalRequest.objects.create(
        tenant=scenario.tenant_a,
        course=course,
        requester=scenario.teacher,
        kind=RequestKind.COURSE_DESKTOPS,
        title="CS101",
        desktops=2,
        vcpu=4,
    )
    pending.steps.create(order=1, approver_role="tenant_admin")
    scenario.sso_student = sso_account(tenant=scenario.tenant_a, role="student", number="20260077", subject="s20260077")
    services.course_roster_import(actor=None, course=course, rows=[(1, "20260077", "统一身份学生")])
    return {"scenario": scenario, "course": course, "quota": quota, "request": pending}


# (name, method, url(world), body(world)) for every operation of this app's API.
OPERATIONS = {
    "tenants.list": ("get", lambda w: "/api/v1/tenants/", None),
    "tenants.retrieve": ("get", lambda w: "/api/v1/tenants/cs/", None),
    "tenants.create": (
        "post",
        lambda w: "/api/v1/tenants/",
        lambda w: {"slug": "ai", "name_zh": "人工智能系", "kind": "department", "parent": "cs"},
    ),
    "tenants.update": ("patch", lambda w: "/api/v1/tenants/cs/", lambda w: {"name_zh": "计算机科学学院"}),
    "memberships.list": ("get", lambda w: "/api/v1/memberships/", None),
    "memberships.create": (
        "post",
        lambda w: "/api/v1/memberships/",
        lambda w: {"user": "newcomer", "tenant": "cs", "role": "student"},
    ),
    "memberships.destroy": (
        "delete",
        lambda w: f"/api/v1/memberships/{Membership.objects.get(user__username='a_student2').pk}/",
        None,
    ),
    "courses.list": ("get", lambda w: "/api/v1/courses/", None),
    "courses.retrieve": ("get", lambda w: f"/api/v1/courses/{w['course'].pk}/", None),
    "courses.create": (
        "post",
        lambda w: "/api/v1/courses/",
        lambda w: {
            "tenant": "cs",
            "code": "CS102",
            "name": "数据结构",
            "teacher": "a_teacher",
            "term_start": "2026-09-01",
            "term_end": "2027-01-15",
        },
    ),
    "courses.update": ("patch", lambda w: f"/api/v1/courses/{w['course'].pk}/", lambda w: {"name": "新名字"}),
    "courses.destroy": ("delete", lambda w: f"/api/v1/courses/{w['course'].pk}/", None),
    "courses.roster": ("get", lambda w: f"/api/v1/courses/{w['course'].pk}/roster/", None),
    "courses.roster_import": ("post", lambda w: f"/api/v1/courses/{w['course'].pk}/roster-import/", "upload"),
    "courses.class_times": (
        "put",
        lambda w: f"/api/v1/courses/{w['course'].pk}/class-times/",
        lambda w: [{"weekday": 3, "start_time": "14:00", "end_time": "15:40"}],
    ),
    "quotas.list": ("get", lambda w: "/api/v1/quotas/", None),
    "quotas.retrieve": ("get", lambda w: f"/api/v1/quotas/{w['quota'].pk}/", None),
    "quotas.create": (
        "post",
        lambda w: "/api/v1/quotas/",
        lambda w: {"tenant": "cs", "course": w["course"].pk, "limits": {"desktops": 40}},
    ),
    "quotas.update": ("patch", lambda w: f"/api/v1/quotas/{w['quota'].pk}/", lambda w: {"limits": {"vcpu": 100}}),
    "requests.list": ("get", lambda w: "/api/v1/requests/", None),
    "requests.retrieve": ("get", lambda w: f"/api/v1/requests/{w['request'].pk}/", None),
    "requests.create": (
        "post",
        lambda w: "/api/v1/requests/",
        lambda w: {
            "kind": "quota_increase",
            "title": "CS101 多 2 个桌面",
            "course": w["course"].pk,
            "amounts": {"vcpu": 4, "desktops": 2},
        },
    ),
    "requests.approve": ("post", lambda w: f"/api/v1/requests/{w['request'].pk}/approve/", lambda w: {}),
    "requests.reject": ("post", lambda w: f"/api/v1/requests/{w['request'].pk}/reject/", lambda w: {"reason": "不行"}),
    "requests.cancel": ("post", lambda w: f"/api/v1/requests/{w['request'].pk}/cancel/", lambda w: {}),
    "requests.retry": ("post", lambda w: f"/api/v1/requests/{w['request'].pk}/retry/", lambda w: {}),
}

# Expected status per operation and role. "write" = the read-only auditors' 403 on every write.
OK, CREATED, GONE, DENIED, HIDDEN, INVALID, CONFLICT = 200, 201, 204, 403, 404, 400, 409
IN_CS = ("tenant_admin", "teacher", "student", "finance", "auditor")
STRANGERS = ("stranger", "stranger_admin")
AUDITORS = ("auditor", "auditadmin")


def _row(default, **roles):
    return {role: roles.get(role, default) for role in ROLES}


MATRIX = {
    "tenants.list": _row(OK),
    "tenants.retrieve": _row(OK, stranger=HIDDEN, stranger_admin=HIDDEN),
    "tenants.create": _row(DENIED, tenant_admin=CREATED, sysadmin=CREATED, stranger=INVALID, stranger_admin=INVALID),
    "tenants.update": _row(DENIED, tenant_admin=OK, sysadmin=OK, stranger=HIDDEN, stranger_admin=HIDDEN),
    "memberships.list": _row(OK),
    # The system admin cannot grant roles (三员分立); the security admin can, anywhere.
    "memberships.create": _row(
        DENIED, tenant_admin=CREATED, secadmin=CREATED, stranger=INVALID, stranger_admin=INVALID
    ),
    "memberships.destroy": _row(HIDDEN, tenant_admin=GONE, secadmin=GONE, auditor=DENIED, auditadmin=DENIED),
    "courses.list": _row(OK),
    "courses.retrieve": _row(OK, stranger=HIDDEN, stranger_admin=HIDDEN, secadmin=HIDDEN, auditadmin=HIDDEN),
    "courses.create": _row(DENIED, tenant_admin=CREATED, teacher=CREATED, stranger=INVALID, stranger_admin=INVALID),
    "courses.update": _row(
        DENIED, tenant_admin=OK, teacher=OK, stranger=HIDDEN, stranger_admin=HIDDEN, secadmin=HIDDEN
    ),
    # CS101 has a request on record, so even its admin cannot delete it: a conflict, not a permission.
    "courses.destroy": _row(DENIED, tenant_admin=CONFLICT, stranger=HIDDEN, stranger_admin=HIDDEN, secadmin=HIDDEN),
    "courses.roster": _row(OK, stranger=HIDDEN, stranger_admin=HIDDEN, secadmin=HIDDEN, auditadmin=HIDDEN),
    "courses.roster_import": _row(
        DENIED, tenant_admin=OK, teacher=OK, stranger=HIDDEN, stranger_admin=HIDDEN, secadmin=HIDDEN
    ),
    "courses.class_times": _row(
        DENIED, tenant_admin=OK, teacher=OK, stranger=HIDDEN, stranger_admin=HIDDEN, secadmin=HIDDEN
    ),
    "quotas.list": _row(OK),
    "quotas.retrieve": _row(HIDDEN, tenant_admin=OK, teacher=OK, finance=OK, auditor=OK, sysadmin=OK),
    # Course quotas are set by the tenant's admin (or the system admin), not by the teacher.
    "quotas.create": _row(
        DENIED, tenant_admin=CREATED, sysadmin=CREATED, stranger=INVALID, stranger_admin=INVALID, secadmin=INVALID
    ),
    # A tenant's own quota is set from above: not by its own admin.
    "quotas.update": _row(
        HIDDEN, sysadmin=OK, tenant_admin=DENIED, teacher=DENIED, finance=DENIED, auditor=DENIED, auditadmin=DENIED
    ),
    "requests.list": _row(OK),
    "requests.retrieve": _row(HIDDEN, tenant_admin=OK, teacher=OK, finance=OK, auditor=OK, sysadmin=OK),
    "requests.create": _row(
        DENIED, tenant_admin=CREATED, teacher=CREATED, stranger=INVALID, stranger_admin=INVALID, secadmin=INVALID
    ),
    "requests.approve": _row(
        HIDDEN, tenant_admin=OK, teacher=DENIED, finance=DENIED, auditor=DENIED, sysadmin=DENIED, auditadmin=DENIED
    ),
    "requests.reject": _row(
        HIDDEN, tenant_admin=OK, teacher=DENIED, finance=DENIED, auditor=DENIED, sysadmin=DENIED, auditadmin=DENIED
    ),
    "requests.cancel": _row(
        HIDDEN, teacher=OK, tenant_admin=DENIED, finance=DENIED, auditor=DENIED, sysadmin=DENIED, auditadmin=DENIED
    ),
    # A pending request has nothing to retry: 409 for whoever sees it, 403 for the read-only auditors.
    "requests.retry": _row(
        HIDDEN,
        tenant_admin=CONFLICT,
        teacher=CONFLICT,
        finance=CONFLICT,
        sysadmin=CONFLICT,
        auditor=DENIED,
        auditadmin=DENIED,
    ),
}

CASES = [(op, role, MATRIX[op][role]) for op in OPERATIONS for role in ROLES]


def test_the_matrix_covers_every_operation_and_role():
    assert set(MATRIX) == set(OPERATIONS)
    assert all(set(row) == set(ROLES) for row in MATRIX.values())


@pytest.mark.parametrize(("operation", "role", "expected"), CASES, ids=[f"{o}-{r}" for o, r, _ in CASES])
def test_role_matrix(world, api, operation, role, expected):
    scenario = world["scenario"]
    factories.UserFactory(username="newcomer")
    method, url, body = OPERATIONS[operation]
    client = api.as_user(getattr(scenario, role))
    if body == "upload":
        upload = SimpleUploadedFile("roster.csv", "学号,姓名\n20269001,新同学\n".encode(), content_type="text/csv")
        response = client.post(url(world), {"file": upload}, format="multipart")
    elif body is None:
        response = getattr(client, method)(url(world))
    else:
        response = getattr(client, method)(url(world), body(world), format="json")
    assert response.status_code == expected, f"{operation} as {role}: {response.status_code} {response.content[:300]!r}"
    if expected >= 400:
        assert set(response.json()) == {"code", "message", "detail"}


def test_list_endpoints_only_show_what_the_role_may_see(world, api):
    scenario = world["scenario"]
    stranger_view = api.as_user(scenario.stranger).get("/api/v1/requests/").json()
    assert stranger_view["count"] == 0
    student_courses = api.as_user(scenario.student).get("/api/v1/courses/").json()
    assert [c["code"] for c in student_courses["results"]] == ["CS101"]
    assert api.as_user(scenario.stranger_admin).get("/api/v1/courses/").json()["count"] == 0


def test_approving_a_decided_request_is_a_409_with_a_code(world, api):
    scenario, pending = world["scenario"], world["request"]
    client = api.as_user(scenario.tenant_admin)
    first = client.post(f"/api/v1/requests/{pending.pk}/approve/", {"comment": "好"}, format="json")
    assert first.status_code == 200 and first.json()["state"] == "approved"
    assert first.json()["steps"][0]["decided_by"] == "a_admin"
    again = client.post(f"/api/v1/requests/{pending.pk}/approve/", {}, format="json")
    assert again.status_code == 409 and again.json()["code"] == ErrorCode.INVALID_TRANSITION


def test_a_request_over_quota_is_refused_with_the_shortfall(world, api):
    from tests.compute.conftest import make_env

    scenario, course = world["scenario"], world["course"]
    env = make_env(scenario)
    seats = course.roster.count()
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 30, "vcpu": 0})
    response = api.as_user(scenario.teacher).post(
        "/api/v1/requests/",
        {
            "kind": "course_desktops",
            "title": "多",
            "course": course.pk,
            "payload": {"image_version": env.version.pk, "flavor": env.flavor.pk},
            "amounts": {"desktops": 1},
        },
        format="json",
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == TenantsError.QUOTA_EXCEEDED
    short = seats * env.flavor.vcpus  # the flavor times the roster, whatever was typed
    assert body["detail"]["shortfalls"][0]["short_by"] == short
    assert f"还差 {short}" in body["message"]


def test_a_roster_with_bad_rows_is_refused_with_the_rows_listed(world, api):
    scenario, course = world["scenario"], world["course"]
    before = course.roster.count()
    upload = SimpleUploadedFile("r.csv", "20269001,甲\n,乙\n20269003,\n".encode(), content_type="text/csv")
    response = api.as_user(scenario.teacher).post(
        f"/api/v1/courses/{course.pk}/roster-import/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert [e["line"] for e in response.json()["detail"]["errors"]] == [2, 3]
    assert course.roster.count() == before


def test_overlapping_class_times_are_refused(world, api):
    course = world["course"]
    response = api.as_user(world["scenario"].teacher).put(
        f"/api/v1/courses/{course.pk}/class-times/",
        [
            {"weekday": 1, "start_time": "08:00", "end_time": "09:40"},
            {"weekday": 1, "start_time": "09:00", "end_time": "10:40"},
        ],
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == TenantsError.CLASS_TIMES_OVERLAP


def test_the_approver_queue_filter_lists_what_waits_for_me(world, api):
    scenario = world["scenario"]
    queue = api.as_user(scenario.tenant_admin).get("/api/v1/requests/?queue=true").json()
    assert [r["id"] for r in queue["results"]] == [world["request"].pk]
    assert api.as_user(scenario.teacher).get("/api/v1/requests/?queue=true").json()["count"] == 0
    mine = api.as_user(scenario.teacher).get("/api/v1/requests/?mine=true&state=pending").json()
    assert mine["count"] == 1


def _more_requests(scenario, course, n):
    for i in range(n):
        request = ApprovalRequest.objects.create(
            tenant=scenario.tenant_a, course=course, requester=scenario.teacher, kind="course_desktops", title=f"r{i}"
        )
        request.steps.create(order=1, approver_role="tenant_admin", decided_by=scenario.tenant_admin)


def _more_courses(scenario, n):
    start = Course.objects.count()
    for i in range(start, start + n):
        Course.objects.create(
            tenant=scenario.tenant_a,
            code=f"X{i}",
            name="x",
            teacher=scenario.teacher,
            term_start=datetime.date(2026, 9, 1),
            term_end=datetime.date(2027, 1, 1),
        ).class_times.create(weekday=2, start_time="08:00", end_time="09:00")


@pytest.mark.parametrize(
    ("url", "grow"),
    [
        ("/api/v1/requests/", lambda w, n: _more_requests(w["scenario"], w["course"], n)),
        ("/api/v1/courses/", lambda w, n: _more_courses(w["scenario"], n)),
        (
            "/api/v1/quotas/",
            lambda w, n: [
                quota_set(actor=None, tenant=w["scenario"].tenant_a, user=factories.UserFactory(), limits={"vcpu": 1})
                for _ in range(n)
            ],
        ),
        (
            "/api/v1/memberships/",
            lambda w, n: [
                factories.member(f"m{Membership.objects.count()}", w["scenario"].tenant_a, "student") for _ in range(n)
            ],
        ),
        ("/api/v1/tenants/", lambda w, n: [factories.TenantFactory(parent=w["scenario"].tenant_a) for _ in range(n)]),
    ],
)
def test_list_endpoints_cost_a_constant_number_of_queries(world, api, url, grow):
    client = api.as_user(world["scenario"].tenant_admin)
    client.get(url)  # warm the per-user role cache and the content-type cache
    assert_constant_queries(lambda: client.get(url), lambda n: grow(world, n))


def test_a_course_without_requests_is_deleted_by_its_admin(world, api):
    scenario = world["scenario"]
    spare = Course.objects.create(
        tenant=scenario.tenant_a,
        code="CS999",
        name="x",
        teacher=scenario.teacher,
        term_start=datetime.date(2026, 9, 1),
        term_end=datetime.date(2027, 1, 1),
    )
    assert api.as_user(scenario.teacher).delete(f"/api/v1/courses/{spare.pk}/").status_code == 403
    assert api.as_user(scenario.tenant_admin).delete(f"/api/v1/courses/{spare.pk}/").status_code == 204
    assert not Course.objects.filter(pk=spare.pk).exists()

"""Issue #14.6, attacks of a hostile tenant admin or teacher on accounts that are not theirs: a roster import
never takes a platform admin's account or another tenant's (by student number or by user name) and never
rewrites their student number; nobody grants themselves auditor or finance; nobody is auditor where they
are admin. Through the API and the pages."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from common.errors import Conflict
from tenants.errors import TenantsError
from tenants.models import Membership, RosterEntry
from tenants.services import course_roster_import, membership_grant
from tests import factories


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _import(api, actor, course, text: str):
    upload = SimpleUploadedFile("r.csv", text.encode(), content_type="text/csv")
    return api.as_user(actor).post(f"/api/v1/courses/{course.pk}/roster-import/", {"file": upload}, format="multipart")


def _refused_lines(response) -> list[int]:
    assert response.status_code == 400, response.content
    assert response.json()["code"] == TenantsError.ROSTER_INVALID
    return [e["line"] for e in response.json()["detail"]["errors"]]


def test_a_roster_row_naming_a_platform_admin_by_user_name_is_refused(scenario, course, api):
    before = course.roster.count()
    response = _import(api, scenario.teacher, course, "20269001,新同学\np_sysadmin,系统管理员\nP_SECADMIN,安全\n")
    assert _refused_lines(response) == [2, 3]
    for admin in (scenario.sysadmin, scenario.secadmin):
        admin.refresh_from_db()
        assert admin.student_number == ""
        assert not Membership.objects.filter(user=admin).exists()
    assert course.roster.count() == before


def test_a_roster_row_naming_another_tenants_account_by_number_is_refused(scenario, course, api):
    scenario.stranger.student_number = "B0001"
    scenario.stranger.save()
    response = _import(api, scenario.tenant_admin, course, "B0001,外院教师\n")
    assert _refused_lines(response) == [1]
    assert not Membership.objects.filter(user=scenario.stranger, tenant=scenario.tenant_a).exists()
    assert not RosterEntry.objects.filter(course=course, user=scenario.stranger).exists()


def test_a_roster_row_never_rewrites_another_tenants_student_number(scenario, course, api):
    other = factories.member("20265555", scenario.tenant_b, "student")  # no student number yet
    response = _import(api, scenario.teacher, course, "20265555,外院学生\nb_teacher,外院教师\n")
    assert _refused_lines(response) == [1, 2]
    for user in (other, scenario.stranger):
        user.refresh_from_db()
        assert user.student_number == ""
        assert not Membership.objects.filter(user=user, tenant=scenario.tenant_a).exists()


def test_a_roster_row_whose_user_name_is_another_persons_account_is_refused(scenario, course, api):
    scenario.student2.student_number = "20260002"
    scenario.student2.save()
    # Its own account (same tenant) under another number: a different person, not this row's.
    response = _import(api, scenario.teacher, course, "a_student2,冒名\n")
    assert _refused_lines(response) == [1]


def test_accounts_of_the_tenant_and_unplaced_accounts_are_still_found(scenario, course):
    unplaced = factories.UserFactory(username="20267777")  # a first campus sign-in, not placed yet
    counts = course_roster_import(
        actor=scenario.teacher, course=course, rows=[(1, "20267777", "新生"), (2, "a_student2", "乙")]
    )
    assert counts["created_accounts"] == 0 and counts["added"] == 1
    unplaced.refresh_from_db()
    assert unplaced.student_number == "20267777"
    assert Membership.objects.filter(user=unplaced, tenant=scenario.tenant_a, role="student").exists()


def test_the_course_page_lists_the_refused_rows(scenario, course):
    upload = SimpleUploadedFile("r.csv", "b_teacher,外院教师\n".encode(), content_type="text/csv")
    page = _client(scenario.teacher).post(f"/tenants/courses/{course.pk}/", {"action": "import", "file": upload})
    assert "其他院系的账号" in page.content.decode()
    assert not Membership.objects.filter(user=scenario.stranger, tenant=scenario.tenant_a).exists()


@pytest.mark.parametrize("role", ["finance", "auditor"])
def test_a_tenant_admin_cannot_grant_themselves_finance_or_auditor(scenario, api, role):
    response = api.as_user(scenario.tenant_admin).post(
        "/api/v1/memberships/", {"user": "a_admin", "tenant": "cs", "role": role}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == TenantsError.SELF_GRANT_FORBIDDEN
    page = _client(scenario.tenant_admin).post("/tenants/t/cs/members/", {"username": "a_admin", "role": role})
    assert page.status_code in (200, 302)
    assert not Membership.objects.filter(user=scenario.tenant_admin, role=role).exists()


def test_the_parent_tenants_admin_grants_finance_to_a_tenant_admin(scenario, api):
    uni_admin = factories.member("u_admin", scenario.university, "tenant_admin")
    response = api.as_user(uni_admin).post(
        "/api/v1/memberships/", {"user": "a_admin", "tenant": "cs", "role": "finance"}, format="json"
    )
    assert response.status_code == 201
    # ... but not auditor: nobody audits what they administer.
    response = api.as_user(uni_admin).post(
        "/api/v1/memberships/", {"user": "a_admin", "tenant": "cs", "role": "auditor"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == TenantsError.AUDIT_AND_ADMIN_SEPARATED


def test_nobody_holds_auditor_beside_admin_on_one_line_of_the_tree(scenario):
    for user, tenant, role in [
        (scenario.tenant_admin, scenario.tenant_a, "auditor"),  # same tenant
        (scenario.auditor, scenario.tenant_a, "tenant_admin"),  # the other way round
        (scenario.auditor, scenario.university, "tenant_admin"),  # admin above what they audit
        (scenario.tenant_admin, scenario.university, "auditor"),  # auditor above what they administer
    ]:
        with pytest.raises(Conflict) as refused:
            membership_grant(actor=scenario.secadmin, user=user, tenant=tenant, role=role)
        assert refused.value.code == TenantsError.AUDIT_AND_ADMIN_SEPARATED
    # Another branch of the tree is another line: cs's admin may audit the mechanical school.
    other_branch = membership_grant(
        actor=scenario.secadmin, user=scenario.tenant_admin, tenant=scenario.tenant_b, role="auditor"
    )
    assert other_branch.role == "auditor"

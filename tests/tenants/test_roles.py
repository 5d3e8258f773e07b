"""Tenant tree management, role grants and 三员分立, guardian grants on one course, scoped selectors."""

import pytest
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from common.errors import Conflict, Forbidden
from tenants import selectors
from tenants.errors import TenantsError
from tenants.models import Membership, PlatformAssignment, Tenant
from tenants.services import (
    course_grant,
    membership_grant,
    membership_revoke,
    platform_role_grant,
    tenant_create,
    tenant_update,
)
from tests import factories


def test_a_parents_admin_manages_its_children(scenario):
    ai = tenant_create(
        actor=scenario.tenant_admin, slug="ai", name_zh="人工智能系", kind="department", parent=scenario.tenant_a
    )
    assert ai.path == "/uni/cs/ai/"
    nlp = tenant_create(actor=scenario.tenant_admin, slug="nlp", name_zh="NLP 组", kind="department", parent=ai)
    tenant_update(actor=scenario.tenant_admin, tenant=nlp, is_active=False)
    assert not Tenant.objects.get(slug="nlp").is_active
    assert AuditEvent.objects.filter(action="tenant.created", object_id=str(ai.pk)).exists()


def test_a_tenants_ancestor_paths_run_from_the_root_down_to_itself(scenario):
    ai = Tenant(slug="ai", path="/uni/cs/ai/")

    assert ai.ancestor_paths() == ["/uni/", "/uni/cs/", "/uni/cs/ai/"]
    assert scenario.university.ancestor_paths() == ["/uni/"]


def test_a_tenant_admin_cannot_switch_off_their_own_tenant_or_touch_a_sibling(scenario):
    with pytest.raises(Forbidden):
        tenant_update(actor=scenario.tenant_admin, tenant=scenario.tenant_a, is_active=False)
    with pytest.raises(Forbidden):
        tenant_create(actor=scenario.tenant_admin, slug="x", name_zh="x", kind="department", parent=scenario.tenant_b)
    with pytest.raises(Forbidden):
        tenant_update(actor=scenario.tenant_admin, tenant=scenario.tenant_b, name_zh="改名")


def test_only_the_system_admin_creates_top_level_tenants(scenario):
    with pytest.raises(Forbidden):
        tenant_create(actor=scenario.secadmin, slug="u2", name_zh="分校", kind="university", parent=None)
    assert tenant_create(actor=scenario.sysadmin, slug="u2", name_zh="分校", kind="university", parent=None)


def test_role_grants_and_revokes_are_audited(scenario):
    newcomer = factories.UserFactory(username="newcomer")
    membership = membership_grant(actor=scenario.tenant_admin, user=newcomer, tenant=scenario.tenant_a, role="teacher")
    membership_revoke(actor=scenario.tenant_admin, membership=membership)
    actions = list(
        AuditEvent.objects.filter(object_id=str(newcomer.pk)).order_by("pk").values_list("action", flat=True)
    )
    assert actions == ["role.granted", "role.revoked"]


def test_the_system_admin_cannot_grant_roles_but_the_security_admin_can(scenario):
    newcomer = factories.UserFactory(username="newcomer")
    with pytest.raises(Forbidden):
        membership_grant(actor=scenario.sysadmin, user=newcomer, tenant=scenario.tenant_a, role="teacher")
    with pytest.raises(Forbidden):
        membership_grant(actor=scenario.auditadmin, user=newcomer, tenant=scenario.tenant_a, role="teacher")
    assert membership_grant(actor=scenario.secadmin, user=newcomer, tenant=scenario.tenant_a, role="teacher")


def test_a_tenant_admin_grants_roles_only_in_their_subtree(scenario):
    with pytest.raises(Forbidden):
        membership_grant(actor=scenario.tenant_admin, user=scenario.student, tenant=scenario.tenant_b, role="student")
    with pytest.raises(Forbidden):
        membership_grant(actor=scenario.teacher, user=scenario.student, tenant=scenario.tenant_a, role="teacher")


def test_no_account_holds_two_platform_roles(scenario):
    with pytest.raises(Conflict) as refused:
        platform_role_grant(actor=scenario.secadmin, user=scenario.sysadmin, role="audit_admin")
    assert refused.value.code == TenantsError.PLATFORM_ROLES_SEPARATED
    with pytest.raises(IntegrityError), transaction.atomic():
        PlatformAssignment.objects.create(user=scenario.sysadmin, role="audit_admin")


def test_a_platform_admin_holds_no_tenant_role_and_a_member_no_platform_role(scenario):
    with pytest.raises(Conflict):
        membership_grant(actor=scenario.secadmin, user=scenario.sysadmin, tenant=scenario.tenant_a, role="tenant_admin")
    with pytest.raises(Conflict):
        platform_role_grant(actor=scenario.secadmin, user=scenario.teacher, role="system_admin")


def test_only_the_security_admin_grants_platform_roles(scenario):
    newcomer = factories.UserFactory(username="newcomer")
    for actor in (scenario.sysadmin, scenario.auditadmin, scenario.tenant_admin):
        with pytest.raises(Forbidden):
            platform_role_grant(actor=actor, user=newcomer, role="audit_admin")


def test_an_admin_cannot_revoke_their_own_admin_role(scenario):
    own = Membership.objects.get(user=scenario.tenant_admin, role="tenant_admin")
    with pytest.raises(Conflict):
        membership_revoke(actor=scenario.tenant_admin, membership=own)


def test_a_teacher_granted_one_course_sees_and_manages_that_course_only(scenario, course):
    colleague = factories.member("colleague", scenario.tenant_a, "teacher")
    assert not selectors.course_list_for(colleague).exists()
    course_grant(actor=scenario.teacher, course=course, user=colleague)
    colleague = type(colleague).objects.get(pk=colleague.pk)  # guardian caches permissions per object
    assert list(selectors.course_list_for(colleague)) == [course]
    from tenants.permissions import can_manage_course

    assert can_manage_course(colleague, course)


def test_selectors_fail_closed(scenario, course, stranger_course):
    assert list(selectors.course_list_for(scenario.student)) == [course]
    assert list(selectors.course_list_for(scenario.stranger)) == [stranger_course]
    assert set(selectors.course_list_for(scenario.auditor)) == {course}
    assert not selectors.course_list_for(scenario.auditadmin).exists()
    assert not selectors.course_list_for(scenario.secadmin).exists()
    assert set(selectors.course_list_for(scenario.sysadmin)) == {course, stranger_course}
    nobody = factories.UserFactory(username="nobody")
    for list_for in (selectors.course_list_for, selectors.quota_list_for, selectors.request_list_for):
        assert not list_for(nobody).exists()
    assert not selectors.membership_list_for(scenario.teacher).exists()
    assert not selectors.membership_list_for(scenario.sysadmin).exists()


def test_an_inactive_tenant_hides_its_courses(scenario, course):
    tenant_update(actor=scenario.sysadmin, tenant=scenario.tenant_a, is_active=False)
    teacher = type(scenario.teacher).objects.get(pk=scenario.teacher.pk)
    assert not selectors.course_list_for(teacher).exists()

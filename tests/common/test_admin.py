"""The admin of every app shows rows for inspection and recovery, and never adds, changes or deletes one
where the app's services must (common.admin's read-only classes): changes go through the services,
which check permissions and write the audit log."""

import pytest
from django.test import Client

from tenants.models import RosterEntry
from tests import factories

READ_ONLY = [
    "billing/invoice",
    "billing/priceplan",
    "billing/budget",
    "compute/desktop",
    "network/network",
    "network/subnet",
    "network/address",
    "network/securitygroup",
    "network/elasticip",
    "network/portforward",
    "tenants/user",
    "tenants/tenant",
    "tenants/membership",
    "tenants/platformassignment",
    "tenants/course",
    "tenants/quota",
    "tenants/reservation",
    "tenants/approvalpolicy",
    "tenants/approvalrequest",
]


@pytest.fixture
def recovery(db, settings):
    settings.SECOND_FACTOR_REQUIRED = False
    user = factories.UserFactory(username="recovery", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", READ_ONLY)
def test_the_admin_lists_rows_but_adds_none(recovery, scenario, model):
    factories.cs101(scenario)
    assert recovery.get(f"/admin/{model}/").status_code == 200
    assert recovery.get(f"/admin/{model}/add/").status_code == 403


def test_the_admin_course_page_shows_the_roster_read_only(recovery, scenario):
    course = factories.cs101(scenario)
    RosterEntry.objects.create(course=course, user=scenario.student, student_number="20260001")
    page = recovery.get(f"/admin/tenants/course/{course.pk}/change/")
    assert page.status_code == 200
    assert "20260001" in page.content.decode()
    assert page.context["has_change_permission"] is False


def test_a_security_groups_rules_are_shown_but_cannot_be_changed_in_the_admin(recovery, scenario):
    from network.models import SecurityGroup
    from network.services import security_group_default_ensure

    group = security_group_default_ensure(tenant=scenario.tenant_a)
    assert group.rules.exists()  # shown in the inline
    page = recovery.get(f"/admin/network/securitygroup/{group.pk}/change/")
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    inline = page.context["inline_admin_formsets"][0]
    assert not inline.has_add_permission and not inline.has_change_permission and not inline.has_delete_permission
    assert recovery.post(f"/admin/network/securitygroup/{group.pk}/delete/", {"post": "yes"}).status_code == 403
    assert SecurityGroup.objects.filter(pk=group.pk).exists()

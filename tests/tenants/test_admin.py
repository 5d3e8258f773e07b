"""The admin shows tenants' data for recovery but never changes it (changes go through services)."""

import pytest
from django.test import Client

from tests import factories

MODELS = [
    "user",
    "tenant",
    "membership",
    "platformassignment",
    "course",
    "quota",
    "reservation",
    "approvalpolicy",
    "approvalrequest",
]


@pytest.fixture
def recovery(db, settings):
    settings.SECOND_FACTOR_REQUIRED = False
    user = factories.UserFactory(username="recovery", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", MODELS)
def test_admin_lists_but_cannot_add(recovery, course, model):
    assert recovery.get(f"/admin/tenants/{model}/").status_code == 200
    assert recovery.get(f"/admin/tenants/{model}/add/").status_code == 403


def test_admin_course_page_shows_the_roster_read_only(recovery, course):
    page = recovery.get(f"/admin/tenants/course/{course.pk}/change/")
    assert page.status_code == 200
    assert "20260001" in page.content.decode()

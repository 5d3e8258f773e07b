"""common.ui.service_call: a service's outcome as a message, then a redirect that never leaves the site."""

import pytest
from django import forms
from django.contrib.messages import constants
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import Client, RequestFactory
from django.utils import translation

from common.errors import Conflict
from common.ui import service_call
from compute.models import Desktop
from tests.compute.conftest import desktop_of

HOSTILE = [
    "https://evil.example/login",
    "//evil.example/login",
    "javascript:alert(1)",
    "http://testserver@evil.example/",
]


def _post(data=None):
    request = RequestFactory().post("/somewhere/", data or {})
    request._messages = CookieStorage(request)
    return request


def _said(request) -> list[tuple[int, str]]:
    return [(m.level, str(m.message)) for m in request._messages]


def _refuse():
    raise Conflict("桌面正在开机。", code="busy")


def test_a_call_that_succeeds_says_so_and_goes_to_next():
    request = _post()

    response = service_call(request, lambda: 42, success="已开机。", next="/desktops/7/")

    assert response.status_code == 302 and response["Location"] == "/desktops/7/"
    assert _said(request) == [(constants.SUCCESS, "已开机。")]


def test_the_message_and_the_destination_may_depend_on_what_the_service_returned():
    request = _post()

    response = service_call(
        request, lambda: 7, success=lambda pk: f"#{pk} 已创建。", next=lambda pk: f"/desktops/{pk}/", back="/desktops/"
    )

    assert response["Location"] == "/desktops/7/"
    assert _said(request) == [(constants.SUCCESS, "#7 已创建。")]


def test_a_refusal_becomes_an_error_message_and_a_redirect_not_a_500():
    request = _post()

    response = service_call(request, _refuse, success="已开机。", next="/desktops/7/")

    assert response.status_code == 302 and response["Location"] == "/desktops/7/"
    assert _said(request) == [(constants.ERROR, "桌面正在开机。")]


def test_a_refusal_goes_back_where_it_is_told_to():
    request = _post()

    response = service_call(request, _refuse, next="/networks/", back="/networks/3/")

    assert response["Location"] == "/networks/3/"


def test_a_refusal_of_a_form_lands_on_the_form_and_the_page_is_rendered_again():
    class Form(forms.Form):
        name = forms.CharField()

    form = Form({"name": "lab"})
    form.is_valid()
    request = _post()

    assert service_call(request, _refuse, next="/x/", form=form) is None
    assert form.non_field_errors() == ["桌面正在开机。"]
    assert _said(request) == []


def test_a_refusal_with_nowhere_to_go_stays_on_the_page():
    request = _post()

    assert service_call(request, _refuse, next="/x/", back=None) is None
    assert _said(request) == [(constants.ERROR, "桌面正在开机。")]


def test_a_refusal_can_be_reported_with_more_detail():
    request = _post()
    seen = []

    service_call(request, _refuse, next="/x/", refused=lambda request, exc: seen.append(exc.code))

    assert seen == ["busy"] and _said(request) == []


def test_a_refusal_is_in_the_language_of_the_request():
    request = _post()

    with translation.override("en"):
        service_call(request, lambda: (_ for _ in ()).throw(Conflict()), next="/x/")

    assert _said(request) == [(constants.ERROR, "This conflicts with the current state.")]


def test_a_next_on_this_site_wins():
    request = _post({"next": "/classroom/?course=3"})

    response = service_call(request, lambda: None, success="好。", next="/desktops/")

    assert response["Location"] == "/classroom/?course=3"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_next_that_leaves_the_site_is_refused_for_the_pages_own(hostile):
    succeeded, refused = _post({"next": hostile}), _post({"next": hostile})

    assert service_call(succeeded, lambda: None, next="/desktops/")["Location"] == "/desktops/"
    assert service_call(refused, _refuse, next="/desktops/")["Location"] == "/desktops/"


def test_a_bug_is_not_swallowed():
    def broken():
        raise KeyError("flavor")

    with pytest.raises(KeyError):
        service_call(_post(), broken, next="/x/")


def test_a_destination_that_needs_the_result_needs_a_way_back_too():
    with pytest.raises(TypeError):
        service_call(_post(), lambda: 1, next=lambda pk: f"/x/{pk}/")


# --- through the pages ------------------------------------------------------------------------------


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.SECOND_FACTOR_REQUIRED = False  # the gate is the audit app's; these tests are about the pages


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "text"),
    [("zh-CN", "只有上级租户的管理员或系统管理员可以停用或启用租户。"), ("en", "Only admins of the parent tenant")],
)
def test_a_refused_page_action_comes_back_with_the_refusal_in_the_users_language(scenario, language, text):
    client = _client(scenario.tenant_admin)  # a tenant's own admin may not switch it off

    response = client.post("/tenants/t/cs/toggle/", HTTP_ACCEPT_LANGUAGE=language, follow=True)

    assert response.status_code == 200 and response.redirect_chain == [("/tenants/tree/", 302)]
    assert text in response.content.decode()
    scenario.tenant_a.refresh_from_db()
    assert scenario.tenant_a.is_active


@pytest.mark.django_db
def test_a_page_action_that_succeeds_says_so(scenario):
    response = _client(scenario.sysadmin).post("/tenants/t/cs/toggle/", follow=True)

    assert response.redirect_chain == [("/tenants/tree/", 302)]
    assert "已停用“计算机学院”。" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_students_desktop_button_never_redirects_off_the_site(scenario, hostile):
    desktop = desktop_of(scenario.tenant_a, owner=scenario.student, state=Desktop.State.RUNNING)

    response = _client(scenario.student).post(
        f"/classroom/desktops/{desktop.pk}/action/", {"action": "start", "next": hostile}
    )

    assert response.status_code == 302 and response["Location"] == "/classroom/"

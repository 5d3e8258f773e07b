"""Campus sign-in in a real browser: a roster student through the real CAS server, another through the
login form against the real slapd; both land on their course desktops."""

import re

import pytest
from playwright.sync_api import expect

from tests.sso.cas import PASSWORD as CAS_PASSWORD
from tests.sso.slapd import PASSWORD as LDAP_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.sso, pytest.mark.django_db(transaction=True)]


def _my_desktops(page):
    panel = page.locator("section[aria-labelledby=panel-my-desktops]")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("CS101")
    return panel


def test_a_roster_student_signs_in_through_cas_and_lands_on_their_desktops(page, demo_data, cas_on):
    page.goto("/accounts/login/")
    page.get_by_test_id("cas-login").click()

    expect(page).to_have_url(re.compile(re.escape(cas_on.url) + "login"))
    page.locator("input[name=username]").fill("s20260001")  # the CAS server's own login page
    page.locator("input[name=password]").fill(CAS_PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").first.click()
    page.wait_for_load_state("networkidle")

    expect(page.get_by_test_id("dashboard-title")).to_contain_text("欢迎")
    _my_desktops(page)
    page.get_by_role("link", name="打开").first.click()
    expect(page).to_have_url(re.compile("/classroom/"))


def test_a_directory_student_signs_in_through_the_login_form_and_lands_on_their_desktops(
    page, login, demo_data, ldap_on
):
    login("s20260002", LDAP_PASSWORD)

    expect(page.get_by_test_id("dashboard-title")).to_contain_text("欢迎")
    _my_desktops(page)


def test_the_login_form_says_when_the_directory_is_down(page, demo_data, ldap_on):
    ldap_on.pause()
    try:
        page.goto("/accounts/login/")
        page.get_by_label("用户名").fill("s20260002")
        page.get_by_label("密码").fill(LDAP_PASSWORD)
        page.get_by_role("button", name="登录").click()
        expect(page.get_by_test_id("login-error")).to_contain_text("统一身份认证服务暂时无法访问")
    finally:
        ldap_on.resume()

"""The UI shell in a real browser: login, the dashboard in Chinese, then in English."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_teacher_sees_the_dashboard_in_chinese_then_switches_to_english(page, login, demo_data):
    login("teacher1", demo_data)

    expect(page.get_by_test_id("dashboard-title")).to_have_text("欢迎，张老师")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("button", name="退出")).to_be_visible()

    page.get_by_test_id("language-en").click()
    page.wait_for_load_state("networkidle")

    expect(page.get_by_test_id("dashboard-title")).to_have_text("Welcome, 张老师")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_a_wrong_password_is_refused_without_saying_which_half(page, demo_data):
    page.goto("/accounts/login/")
    page.get_by_label("用户名").fill("teacher1")
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()

    expect(page.get_by_test_id("login-error")).to_have_text(re.compile("用户名或密码错误"))
    expect(page).to_have_url(re.compile("/accounts/login/"))


def test_an_unknown_page_is_a_friendly_404_in_the_users_language(page, login, demo_data):
    login("student1", demo_data)
    response = page.goto("/no-such-page/")

    assert response.status == 404
    expect(page.get_by_test_id("error-message")).to_contain_text("页面不存在")

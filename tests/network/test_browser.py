"""The tenant admin's network journey in a real browser: the demo network with its desktops'
bindings, a new network, a security group rule refused then added."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_cs_admin_sees_the_lab_network_creates_another_and_adds_a_rule(page, login, demo_data):
    from network.models import Network, SecurityGroupRule

    login("cs_admin", demo_data)
    page.get_by_role("link", name="网络").first.click()
    expect(page.get_by_test_id("network-list")).to_contain_text("cs-lab")
    page.get_by_role("link", name="cs-lab").click()
    expect(page.get_by_test_id("subnets")).to_contain_text("10.20.1.0/24")

    page.get_by_role("link", name="网络").first.click()
    form = page.get_by_test_id("network-form")
    form.get_by_label("名称").fill("project")
    form.get_by_label("网段", exact=True).fill("10.20.1.128/25")
    form.get_by_role("button", name="创建").click()
    expect(page.get_by_role("alert")).to_contain_text("重叠")
    form = page.get_by_test_id("network-form")
    form.get_by_label("网段", exact=True).fill("10.20.2.0/24")
    form.get_by_role("button", name="创建").click()
    expect(page.get_by_role("heading", name="project")).to_be_visible()
    assert Network.objects.filter(tenant__slug="cs", name="project").exists()

    page.get_by_role("link", name="网络").first.click()
    page.get_by_role("link", name="安全组").click()
    page.get_by_role("link", name="default").click()
    page.get_by_label("起始端口").fill("90")
    page.get_by_label("结束端口").fill("80")
    page.get_by_role("button", name="添加").click()
    expect(page.get_by_role("alert")).to_contain_text("端口范围")
    page.get_by_label("起始端口").fill("8080")
    page.get_by_label("结束端口").fill("")
    page.get_by_role("button", name="添加").click()
    expect(page.get_by_test_id("rules")).to_contain_text("8080")
    assert SecurityGroupRule.objects.filter(group__tenant__slug="cs", port_min=8080).exists()

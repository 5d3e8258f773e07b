"""The first-day journeys of issue #13, walked in Chromium on the demo data as shipped, one role
each, through the sidebar as a newcomer would."""

import re
import subprocess

import pytest
from playwright.sync_api import expect

from tests.browser.crawl import sign_in
from tests.harness.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sidebar(page, label: str):
    page.locator("#sidebar").get_by_role("link", name=label, exact=True).click()
    page.wait_for_load_state("networkidle")


@pytest.mark.worker
def test_teacher1_changes_cs101s_pool_through_the_wizard(page, browser, live_server, celery_worker, demo_data):
    """Seats +3 (spare seats beyond the roster of 30): the change needs more quota, so cs_admin
    approves it; the worker provisions the three, and teacher1 sees 33 ready."""
    from compute.classroom.models import DesktopPool, Seat
    from compute.models import Desktop

    pool = DesktopPool.objects.get(course__code="CS101", state="active")
    wait_for(
        lambda: Desktop.objects.filter(seat__pool=pool, state__in=Desktop.LIVE).count() == 30,
        timeout=180,
        what="the demo pool's 30 desktops",
    )
    sign_in(page, "teacher1", demo_data)
    _sidebar(page, "我的课程")
    page.get_by_role("link", name="CS101 计算机导论").click()
    page.get_by_test_id("course-pool-link").click()
    expect(page.get_by_test_id("progress-text")).to_have_text("30 / 30 就绪")
    page.get_by_test_id("pool-change-link").click()
    expect(page.get_by_test_id("pool-change")).to_be_visible()
    seats = page.get_by_label("座位数")
    expect(seats).to_have_value("30")  # pre-filled with today's pool
    seats.fill("33")
    seats.dispatch_event("change")
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("wizard-submit").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("request-state")).to_have_text("待审批")  # three more desktops: more quota
    request_url = page.url

    admin = browser.new_context(locale="zh-CN", base_url=live_server.url).new_page()
    try:
        sign_in(admin, "cs_admin", demo_data)
        _sidebar(admin, "申请与审批")
        admin.goto(request_url)
        admin.get_by_test_id("approve").click()
        admin.wait_for_load_state("networkidle")
    finally:
        admin.context.close()

    wait_for(
        lambda: Seat.objects.filter(pool=pool, student__isnull=True, desktop__state__in=Desktop.LIVE).count() == 3,
        timeout=180,
        what="three spare seats provisioned",
    )
    page.goto(f"/classroom/pools/{pool.pk}/")
    expect(page.get_by_test_id("progress-text")).to_have_text("33 / 33 就绪")
    expect(page.get_by_test_id("spare")).to_have_count(3)


@pytest.mark.worker
def test_student1_stops_and_starts_their_desktop_from_my_desktops(page, celery_worker, demo_data):
    from compute.models import Desktop

    desktop = Desktop.objects.filter(owner__username="student1", course__code="CS101").first()
    wait_for(
        lambda: Desktop.objects.get(pk=desktop.pk).state in ("running", "stopped"), timeout=120, what="demo desktop"
    )
    sign_in(page, "student1", demo_data)
    _sidebar(page, "我的桌面")
    row = page.get_by_test_id("my-desktop").filter(has_text=desktop.name)

    if Desktop.objects.get(pk=desktop.pk).state == "stopped":
        row.get_by_role("button", name="开机").click()
        wait_for(lambda: Desktop.objects.get(pk=desktop.pk).state == "running", timeout=60, what="started")
        page.reload()
    expect(row.get_by_test_id("desktop-state")).to_have_text("运行中")
    # The test driver has no display: the console is not offered as if it worked, and says why.
    expect(row.get_by_test_id("open-console")).to_be_disabled()
    expect(row.get_by_test_id("console-unavailable")).to_be_visible()

    row.get_by_test_id("stop").click()
    page.get_by_test_id("confirm-ok").click()
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).state == "stopped", timeout=60, what="stopped")
    page.goto("/classroom/")
    expect(row.get_by_test_id("desktop-state")).to_have_text("已关机")

    row.get_by_role("button", name="开机").click()
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).state == "running", timeout=60, what="started again")
    page.goto("/classroom/")
    expect(row.get_by_test_id("desktop-state")).to_have_text("运行中")

    _sidebar(page, "用量与费用")  # their own usage
    expect(page.get_by_role("heading", name="用量与费用", exact=True)).to_be_visible()


def test_finance1_finds_last_months_invoice_and_downloads_its_pdf(page, demo_data, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import Invoice

    last = timezone.localdate().replace(day=1) - timedelta(days=1)
    invoice = Invoice.objects.get(tenant__slug="cs", month__year=last.year, month__month=last.month)  # the demo's
    sign_in(page, "finance1", demo_data)
    _sidebar(page, "账单")
    page.get_by_role("link", name=invoice.number).click()
    expect(page.get_by_test_id("invoice-number")).to_have_text(invoice.number)

    with page.expect_download() as download:
        page.get_by_test_id("download-pdf").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert invoice.number in text and "计算机学院" in text


def test_auditor1_filters_the_log_and_verifies_the_chain(page, demo_data):
    sign_in(page, "auditor1", demo_data)
    _sidebar(page, "审计日志")
    page.get_by_label("操作", exact=True).select_option(label="登录失败")
    page.get_by_role("button", name="查询").click()
    page.wait_for_load_state("networkidle")
    count = page.get_by_test_id("result-count")
    expect(count).to_have_text(re.compile(r"共 [1-9]\d* 条"))
    expect(page.get_by_test_id("audit-events").locator("tbody tr").first).to_contain_text("登录失败")

    page.get_by_role("link", name="防篡改校验").click()
    page.get_by_role("button", name="立即校验").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("chain-status")).to_contain_text("审计链完整")


def test_sysadmin_edits_a_flavor(page, demo_data):
    from compute.models import Flavor

    flavor = Flavor.objects.filter(tenant__isnull=True).order_by("vcpus", "memory_mib").first()
    sign_in(page, "sysadmin", demo_data)
    _sidebar(page, "虚拟化资源")
    page.get_by_role("link", name="规格", exact=True).click()
    page.get_by_role("link", name=f"修改规格 {flavor.name}").click()
    page.get_by_label("内存 (MiB)").fill(str(flavor.memory_mib * 2))
    page.get_by_role("button", name="保存").click()
    page.wait_for_load_state("networkidle")

    expect(page.get_by_role("alert").first).to_contain_text("规格已保存")
    assert Flavor.objects.get(pk=flavor.pk).memory_mib == flavor.memory_mib * 2

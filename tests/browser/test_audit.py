"""The auditor's journey in a real browser: log in with TOTP, search teacher1's actions, export
them, and download a 等保 self-assessment report."""

import subprocess
import time

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOTP_SECRET_HEX = "3132333435363738393031323334353637383930"  # 160 bits


def _totp_code(device) -> str:
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def test_auditor_searches_teacher1_exports_and_downloads_a_dengbao_report(page, login, demo_data, tmp_path):
    from audit.actions import Action
    from audit.models import AuditEvent
    from audit.security import totp_install
    from tenants.models import User

    device = totp_install(user=User.objects.get(username="auditor1"), secret_hex=TOTP_SECRET_HEX)
    teacher_events = AuditEvent.objects.filter(actor_username="teacher1").count()
    assert teacher_events > 0

    login("auditor1", demo_data)
    page.get_by_label("动态口令或恢复码").fill(_totp_code(device))
    page.get_by_role("button", name="验证").click()
    page.wait_for_load_state("networkidle")

    page.get_by_role("link", name="审计日志").first.click()
    page.get_by_label("操作者", exact=True).fill("teacher1")
    page.get_by_role("button", name="查询").click()
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    expect(rows.first).to_contain_text("teacher1")
    assert all("teacher1" in text for text in rows.all_inner_texts())
    expect(page.get_by_test_id("result-count")).to_contain_text(str(teacher_events))

    with page.expect_download() as csv_download:
        page.get_by_test_id("export-csv").click()
    csv_path = tmp_path / csv_download.value.suggested_filename
    csv_download.value.save_as(csv_path)
    text = csv_path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line]
    assert len(lines) == teacher_events + 1 and all(",teacher1," in line for line in lines[1:])
    assert AuditEvent.objects.filter(action=Action.EXPORT_MADE, actor_username="auditor1").exists()

    page.get_by_role("link", name="等保自查报告").click()
    page.get_by_label("等级").select_option("3")
    page.get_by_role("button", name="生成报告").click()
    rate = page.get_by_test_id("report-rate").inner_text()
    with page.expect_download() as pdf_download:
        page.get_by_test_id("report-pdf").click()
    pdf_path = tmp_path / pdf_download.value.suggested_filename
    pdf_download.value.save_as(pdf_path)
    pdf_text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
    assert "身份鉴别" in pdf_text.replace(" ", "") and rate in pdf_text

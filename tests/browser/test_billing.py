"""Finance's journey in a real browser: log in with the second factor, open last month's invoice,
download it as PDF and as XLSX, and check both against the database."""

import io
import re
import subprocess
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOTP_SECRET_HEX = "3132333435363738393031323334353637383930"  # 160 bits


def _totp_code(device) -> str:
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def test_finance_opens_last_months_invoice_and_downloads_pdf_and_xlsx(page, login, demo_data, tmp_path):
    from openpyxl import load_workbook

    from audit.security import totp_install
    from billing.models import Invoice
    from tenants.models import User

    last_month = (timezone.localdate().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    call_command("issue_invoices", "--month", last_month, stdout=io.StringIO())
    invoice = Invoice.objects.get(tenant__slug="cs", month__year=int(last_month[:4]), month__month=int(last_month[5:]))
    device = totp_install(user=User.objects.get(username="finance1"), secret_hex=TOTP_SECRET_HEX)

    login("finance1", demo_data)
    page.get_by_label("动态口令或恢复码").fill(_totp_code(device))
    page.get_by_role("button", name="验证").click()
    page.wait_for_load_state("networkidle")

    page.get_by_role("link", name="账单").first.click()
    page.get_by_role("link", name=invoice.number).click()
    expect(page.get_by_test_id("invoice-number")).to_have_text(invoice.number)
    expect(page.get_by_test_id("invoice-total")).to_have_text(str(invoice.total))

    with page.expect_download() as pdf_download:
        page.get_by_test_id("download-pdf").click()
    pdf_path = tmp_path / pdf_download.value.suggested_filename
    pdf_download.value.save_as(pdf_path)
    with page.expect_download() as xlsx_download:
        page.get_by_test_id("download-xlsx").click()
    xlsx_path = tmp_path / xlsx_download.value.suggested_filename
    xlsx_download.value.save_as(xlsx_path)

    assert pdf_path.name == f"{invoice.number}.pdf" and xlsx_path.name == f"{invoice.number}.xlsx"
    text = subprocess.run(["pdftotext", "-layout", str(pdf_path), "-"], capture_output=True, text=True, check=True)
    assert invoice.number in text.stdout and "计算机学院" in text.stdout
    total = re.search(r"合计 Total \(CNY\)\s+(\d+\.\d{2})", text.stdout)
    assert total and Decimal(total.group(1)) == invoice.total
    rows = list(load_workbook(xlsx_path).active.iter_rows(values_only=True))
    assert rows[0][1] == invoice.number and Decimal(str(rows[-1][-1])) == invoice.total
    assert len(rows) == invoice.lines.count() + 3


def test_finance_sees_last_months_daily_cost_chart(page, login, demo_data):
    from audit.security import totp_install
    from tenants.models import User

    device = totp_install(user=User.objects.get(username="finance1"), secret_hex=TOTP_SECRET_HEX)
    first = (timezone.localdate().replace(day=1) - timedelta(days=1)).replace(day=1)
    last = timezone.localdate().replace(day=1) - timedelta(days=1)

    login("finance1", demo_data)
    page.get_by_label("动态口令或恢复码").fill(_totp_code(device))
    page.get_by_role("button", name="验证").click()
    page.get_by_role("link", name="用量与费用").first.click()
    page.get_by_label("开始日期").fill(first.isoformat())
    page.get_by_label("结束日期").fill(last.isoformat())
    page.get_by_role("button", name="查询").click()

    expect(page.get_by_test_id("usage-table")).to_contain_text("CS101")
    bars = page.evaluate("() => Chart.getChart('daily-cost-chart').data.datasets[0].data.length")
    assert bars == (last - first).days + 1
    assert page.evaluate("() => Chart.getChart('daily-cost-chart').data.datasets[0].data.some((v) => v > 0)")

"""Invoices as documents: PDF (WeasyPrint, A4, Chinese text in Noto Sans CJK SC), CSV (UTF-8 with BOM), XLSX."""

import csv
import io

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import Invoice

BOM = "\ufeff"


def _context(invoice: Invoice) -> dict:
    return {
        "invoice": invoice,
        "lines": list(invoice.lines.all().order_by("position")),
        "credit_notes": list(invoice.credit_notes.all()),
        "issued_at": timezone.localtime(invoice.issued_at),
    }


def invoice_html(invoice: Invoice) -> str:
    return render_to_string("billing/invoice_pdf.html", _context(invoice))


def invoice_pdf(invoice: Invoice) -> bytes:
    from weasyprint import HTML

    return HTML(string=invoice_html(invoice)).write_pdf()


def _header() -> list[str]:
    return [
        _("序号"),
        _("说明"),
        _("计费项"),
        _("起始日期"),
        _("截止日期"),
        _("用量"),
        _("免费量"),
        _("单位"),
        _("单价（元）"),
        _("折扣（%）"),
        _("金额（元）"),
    ]


def _rows(invoice: Invoice):
    for line in invoice.lines.all().order_by("position"):
        yield [
            line.position,
            line.description,
            line.get_item_display(),
            line.period_start.isoformat(),
            line.period_end.isoformat(),
            line.quantity,
            line.free_quantity,
            line.unit,
            line.rate,
            line.discount_percent,
            line.amount,
        ]


def invoice_csv(invoice: Invoice) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens the Chinese text correctly."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow(
        [_("账单号"), invoice.number, _("租户"), invoice.tenant.name, _("账期"), invoice.month.strftime("%Y-%m")]
    )
    writer.writerow(_header())
    for row in _rows(invoice):
        writer.writerow([str(value) for value in row])
    writer.writerow(["", _("合计"), "", "", "", "", "", "", "", "", str(invoice.total)])
    return out.getvalue().encode("utf-8")


def invoice_xlsx(invoice: Invoice) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = invoice.number
    sheet.append(
        [_("账单号"), invoice.number, _("租户"), invoice.tenant.name, _("账期"), invoice.month.strftime("%Y-%m")]
    )
    sheet.append(_header())
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in _rows(invoice):
        sheet.append(row)  # Decimals stay numbers, so the sheet can sum them
    sheet.append(["", _("合计"), "", "", "", "", "", "", "", "", invoice.total])
    for column, width in zip("ABCDEFGHIJK", (6, 40, 10, 12, 12, 14, 12, 12, 12, 10, 14), strict=True):
        sheet.column_dimensions[column].width = width
    for row in sheet.iter_rows(min_row=3, min_col=11, max_col=11):
        for cell in row:
            cell.number_format = "#,##0.00"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def filename(invoice: Invoice, ext: str) -> str:
    return f"{invoice.number}.{ext}"

"""Invoices as documents: PDF (WeasyPrint, A4, Chinese text in Noto Sans CJK SC), CSV (UTF-8 with BOM), XLSX.

The PDF's lines are a ledger: one preformatted text line per invoice line, in Noto Sans Mono
CJK SC (a Chinese character is exactly two columns wide, so columns align). WeasyPrint spends
milliseconds per box, and a table cell is a box: a 1,000-line invoice as a table takes half a
minute on a 2-core machine; as ledger lines it takes a few seconds.
"""

import unicodedata

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing.models import Invoice
from common import spreadsheet

# (header, display width, right-aligned) of the ledger's columns.
COLUMNS = [
    ("#", 5, True),
    (gettext_noop("说明"), 34, False),
    (gettext_noop("期间"), 11, False),
    (gettext_noop("用量"), 14, True),
    (gettext_noop("免费量"), 12, True),
    (gettext_noop("单位"), 10, False),
    (gettext_noop("单价"), 9, True),
    (gettext_noop("折扣"), 7, True),
    (gettext_noop("金额"), 13, True),
]


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _wrap(text: str, size: int) -> list[str]:
    """Cut text into pieces of at most ``size`` display columns."""
    pieces, current = [], ""
    for ch in text:
        if width(current + ch) > size:
            pieces.append(current)
            current = ""
        current += ch
    return [*pieces, current] if current or not pieces else pieces


def _cell(text: str, size: int, right: bool) -> str:
    pad = " " * max(0, size - width(text))
    return pad + text if right else text + pad


def ledger_row(values: list[str]) -> str:
    """One invoice line as aligned text; a long description continues on the next lines."""
    description = _wrap(values[1], COLUMNS[1][1])
    first = [values[0], description[0], *values[2:]]
    lines = [" ".join(_cell(v, w, r) for v, (_h, w, r) in zip(first, COLUMNS, strict=True)).rstrip()]
    for more in description[1:]:
        lines.append((" " * (COLUMNS[0][1] + 1) + more).rstrip())
    return "\n".join(lines)


def _ledger(lines) -> list[str]:
    return [
        ledger_row(
            [
                str(line.position),
                line.description,
                f"{line.period_start:%m-%d}~{line.period_end:%m-%d}",
                str(line.quantity),
                str(line.free_quantity),
                line.unit,
                str(line.rate),
                f"{line.discount_percent}%",
                str(line.amount),
            ]
        )
        for line in lines
    ]


def _context(invoice: Invoice) -> dict:
    lines = list(invoice.lines.all().order_by("position"))
    total_width = sum(w for _h, w, _r in COLUMNS) + len(COLUMNS) - 1
    label = f"{_('合计')} Total (CNY)"
    return {
        "invoice": invoice,
        "ledger_header": ledger_row([_(h) if h != "#" else h for h, _w, _r in COLUMNS]),
        "ledger": _ledger(lines),
        "ledger_total": label + _cell(str(invoice.total), total_width - width(label), True),
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


def _sheet(invoice: Invoice):
    """The rows of the CSV and XLSX downloads: the invoice's heading, the column names, the lines, the total."""
    yield [_("账单号"), invoice.number, _("租户"), invoice.tenant.name, _("账期"), invoice.month.strftime("%Y-%m")]
    yield _header()
    yield from _rows(invoice)  # Decimals stay numbers, so a spreadsheet can sum them
    yield ["", _("合计"), "", "", "", "", "", "", "", "", invoice.total]


def invoice_csv(invoice: Invoice) -> bytes:
    return spreadsheet.csv_bytes(_sheet(invoice))


def invoice_xlsx(invoice: Invoice) -> bytes:
    return spreadsheet.xlsx_bytes(
        _sheet(invoice),
        title=invoice.number,
        bold_rows=[1],
        widths=(6, 40, 10, 12, 12, 14, 12, 12, 12, 10, 14),
        number_formats={10: "#,##0.00"},
    )


def filename(invoice: Invoice, ext: str) -> str:
    return f"{invoice.number}.{ext}"

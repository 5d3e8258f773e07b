"""Spreadsheet downloads, CSV (UTF-8 with a byte-order mark) and XLSX, that are safe to open in Excel.

Excel and LibreOffice take a cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula, so a name someone typed (a course called ``=HYPERLINK(...)``)
could run or send data away when finance opens the file. Such text gets a leading
apostrophe and stays text. Only text is touched: numbers, negative amounts included, are
written as numbers, so a sheet can still sum them.
"""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV file as UTF-8 only when it starts with this; otherwise Chinese text is garbled.
BOM = "\ufeff"
CHUNK = 65536


def cell(value):
    """``value`` as it is written into a cell: text a spreadsheet would run as a formula is made inert."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_chunks(rows: Iterable[Sequence]) -> Iterator[str]:
    """The rows as CSV text, a BOM first, in pieces of about 64 KiB (a long export streams)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield BOM
    for row in rows:
        writer.writerow([cell(value) for value in row])
        if buffer.tell() > CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_bytes(rows: Iterable[Sequence]) -> bytes:
    return "".join(csv_chunks(rows)).encode("utf-8")


def xlsx_bytes(
    rows: Iterable[Sequence],
    *,
    title: str,
    bold_rows: Iterable[int] = (),
    widths: Sequence[float] = (),
    number_formats: dict[int, str] | None = None,
) -> bytes:
    """The rows as a workbook of one sheet named ``title``, written row by row (never all in memory).

    ``bold_rows``: indexes of rows in bold (a header); ``widths``: column widths from the first
    column on; ``number_formats``: {column index: format} for the numbers of that column.
    """
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold, formats = set(bold_rows), number_formats or {}
    for index, row in enumerate(rows):
        values = [cell(value) for value in row]
        if index in bold or formats:
            values = _styled(sheet, values, bold=index in bold, formats=formats)
        sheet.append(values)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _styled(sheet, values: list, *, bold: bool, formats: dict[int, str]) -> list:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    cells = []
    for column, value in enumerate(values):
        styled = WriteOnlyCell(sheet, value=value)
        if bold:
            styled.font = Font(bold=True)
        if column in formats and _is_number(value):
            styled.number_format = formats[column]
        cells.append(styled)
    return cells


def _is_number(value) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)

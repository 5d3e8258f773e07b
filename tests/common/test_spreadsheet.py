"""common.spreadsheet: CSV and XLSX downloads where text never runs as a formula and numbers stay numbers."""

import csv
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from common.spreadsheet import cell, csv_bytes, csv_chunks, xlsx_bytes


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_text_a_spreadsheet_would_run_becomes_inert_text(text):
    assert cell(text) == "'" + text


@pytest.mark.parametrize("value", [Decimal("-12.50"), -3, 0.5, "计算机学院", "a=b", "", None, True])
def test_everything_else_is_written_as_it_is(value):
    assert cell(value) is value


def test_the_csv_starts_with_a_bom_and_keeps_negative_amounts_plain():
    raw = csv_bytes([["说明", "金额"], ["=HYPERLINK(1)", Decimal("-12.50")]])

    assert raw.startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(io.StringIO(raw.decode("utf-8-sig")))) == [["说明", "金额"], ["'=HYPERLINK(1)", "-12.50"]]


def test_a_long_csv_streams_in_pieces():
    pieces = list(csv_chunks(["x" * 100] for _ in range(2000)))

    assert len(pieces) > 3 and pieces[0] == "\ufeff"


def test_the_xlsx_keeps_numbers_numbers_with_their_format_and_defuses_text():
    raw = xlsx_bytes(
        [["说明", "金额"], ["-1 h corrected", Decimal("-12.50")]],
        title="INV-1",
        bold_rows=[0],
        widths=(30, 12),
        number_formats={1: "#,##0.00"},
    )

    sheet = load_workbook(io.BytesIO(raw)).active
    assert sheet.title == "INV-1" and sheet["A1"].font.b and not sheet["A2"].font.b
    assert sheet["A2"].value == "'-1 h corrected"
    assert sheet["B2"].value == -12.5 and sheet["B2"].data_type == "n" and sheet["B2"].number_format == "#,##0.00"
    assert sheet["B1"].number_format == "General"
    assert sheet.column_dimensions["A"].width == 30

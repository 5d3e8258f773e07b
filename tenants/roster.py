"""Reading a course roster from CSV or XLSX: two columns, student number and name.

Every bad line is reported with its line number; a file with any bad line yields no rows.
"""

import csv
import io
import re
import zipfile

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from common.errors import InvalidInput
from tenants.errors import TenantsError

MAX_ROWS = 2000
MAX_BYTES = 2 * 1024 * 1024
NUMBER_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
HEADER_WORDS = {"学号", "student number", "student_number", "number", "工号"}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():  # Excel stores 20260001 as 20260001.0
        value = int(value)
    return str(value).strip()


def _csv_lines(content: bytes):
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in a Chinese locale saves CSV as GBK
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidInput(_("无法识别文件编码，请另存为 UTF-8 编码的 CSV。"), code=TenantsError.ROSTER_UNREADABLE)
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        yield number, [_cell(c) for c in row]


def _xlsx_lines(content: bytes):
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InvalidInput(
            _("无法读取该 Excel 文件，请确认是 .xlsx 格式。"), code=TenantsError.ROSTER_UNREADABLE
        ) from exc
    try:
        sheet = workbook.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell(c) for c in row]
    finally:
        workbook.close()


def roster_parse(*, filename: str, content: bytes) -> list[tuple[int, str, str]]:
    """(line, student number, name) for every data line; raises InvalidInput listing every bad line."""
    if len(content) > MAX_BYTES:
        raise InvalidInput(_("文件过大（上限 2 MB）。"), code=TenantsError.ROSTER_TOO_LARGE)
    lower = (filename or "").lower()
    if lower.endswith(".xlsx"):
        lines = _xlsx_lines(content)
    elif lower.endswith((".csv", ".txt")):
        lines = _csv_lines(content)
    else:
        raise InvalidInput(_("只支持 CSV 或 XLSX 文件。"), code=TenantsError.ROSTER_FORMAT)

    rows, errors, seen = [], [], {}
    for line, cells in lines:
        cells = cells + ["", ""]
        number, name = cells[0], cells[1]
        if not any(cells):
            continue
        if not rows and not errors and number.lower() in HEADER_WORDS:
            continue
        problems = []
        if not number:
            problems.append(_("缺少学号"))
        elif not NUMBER_RE.match(number):
            problems.append(_("学号“%(n)s”格式不对（只能是字母、数字，最多 32 位）") % {"n": number})
        elif number in seen:
            problems.append(_("学号 %(n)s 与第 %(line)s 行重复") % {"n": number, "line": seen[number]})
        if not name:
            problems.append(_("缺少姓名"))
        elif len(name) > 150:
            problems.append(_("姓名过长"))
        if any(cells[2:]):
            problems.append(_("多出了列（只需要学号和姓名两列）"))
        if problems:
            errors.append({"line": line, "student_number": number, "message": "；".join(problems)})
        else:
            seen[number] = line
            rows.append((line, number, name))
        if len(rows) + len(errors) > MAX_ROWS:
            raise InvalidInput(
                ngettext("名单过长（上限 %(n)s 行）。", "名单过长（上限 %(n)s 行）。", MAX_ROWS) % {"n": MAX_ROWS},
                code=TenantsError.ROSTER_TOO_LARGE,
            )
    if errors:
        raise InvalidInput(
            ngettext(
                "名单有 %(n)s 行有误，未导入任何学生。请改正后重新上传。",
                "名单有 %(n)s 行有误，未导入任何学生。请改正后重新上传。",
                len(errors),
            )
            % {"n": len(errors)},
            code=TenantsError.ROSTER_INVALID,
            detail={"errors": errors},
        )
    if not rows:
        raise InvalidInput(_("文件中没有学生。每行应为：学号,姓名。"), code=TenantsError.ROSTER_EMPTY)
    return rows

"""Roster import from CSV and XLSX: every bad line reported, nothing imported when any is bad."""

import io

import pytest
from openpyxl import Workbook

from common.errors import Forbidden, InvalidInput
from tenants.errors import TenantsError
from tenants.models import Membership, RosterEntry, User
from tenants.roster import roster_parse
from tenants.services import course_roster_import


def _import(scenario, course, content: bytes, filename="roster.csv", actor=None, **kw):
    rows = roster_parse(filename=filename, content=content)
    return course_roster_import(actor=actor or scenario.teacher, course=course, rows=rows, **kw)


def test_csv_roster_adds_students_and_creates_missing_accounts(scenario, course):
    content = "学号,姓名\n20260001,甲\n20269001,新同学\n".encode()
    counts = _import(scenario, course, content)
    assert counts == {"created_accounts": 1, "added": 1, "unchanged": 1, "removed": 0}
    newcomer = User.objects.get(student_number="20269001")
    assert (newcomer.username, newcomer.display_name, newcomer.has_usable_password()) == ("20269001", "新同学", False)
    assert Membership.objects.filter(user=newcomer, tenant=scenario.tenant_a, role="student").exists()
    assert RosterEntry.objects.filter(course=course).count() == 3


def test_every_bad_row_is_reported_by_line_and_nothing_is_imported(scenario, course):
    content = "学号,姓名\n20269001,好的\n,没学号\n20269002,\n20269001,重复\nabc def,空格\n20269003,多,一列\n".encode()
    with pytest.raises(InvalidInput) as refused:
        _import(scenario, course, content)
    errors = refused.value.detail["errors"]
    assert [e["line"] for e in errors] == [3, 4, 5, 6, 7]
    assert "第 2 行重复" in errors[2]["message"]
    assert refused.value.code == TenantsError.ROSTER_INVALID
    assert not User.objects.filter(student_number__startswith="20269").exists()
    assert RosterEntry.objects.filter(course=course).count() == 2


def test_xlsx_roster_is_read_with_numbers_stored_as_numbers(scenario, course):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["学号", "姓名"])
    sheet.append([20269001, "表格同学"])
    sheet.append(["20260002", "乙"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    counts = _import(scenario, course, buffer.getvalue(), filename="名单.xlsx", replace=True)
    assert counts == {"created_accounts": 1, "added": 1, "unchanged": 1, "removed": 1}
    assert set(course.roster.values_list("student_number", flat=True)) == {"20269001", "20260002"}


def test_gbk_csv_from_excel_is_read(scenario, course):
    counts = _import(scenario, course, "20269001,王五\n".encode("gbk"))
    assert counts["added"] == 1 and User.objects.get(student_number="20269001").display_name == "王五"


def test_unreadable_files_are_refused_in_plain_words(scenario, course):
    with pytest.raises(InvalidInput) as refused:
        roster_parse(filename="roster.xlsx", content=b"not a zip")
    assert refused.value.code == TenantsError.ROSTER_UNREADABLE
    with pytest.raises(InvalidInput) as refused:
        roster_parse(filename="roster.pdf", content=b"%PDF")
    assert refused.value.code == TenantsError.ROSTER_FORMAT
    with pytest.raises(InvalidInput) as refused:
        roster_parse(filename="roster.csv", content=b"\n\n")
    assert refused.value.code == TenantsError.ROSTER_EMPTY


def test_a_platform_admin_cannot_be_put_on_a_roster(scenario, course):
    scenario.sysadmin.student_number = "A0001"
    scenario.sysadmin.save()
    with pytest.raises(InvalidInput) as refused:
        _import(scenario, course, "A0001,管理员\n".encode())
    assert refused.value.detail["errors"][0]["line"] == 1


def test_only_people_who_manage_the_course_import_its_roster(scenario, course):
    for actor in (scenario.student, scenario.stranger, scenario.auditor, scenario.finance):
        with pytest.raises(Forbidden):
            _import(scenario, course, "20269001,某\n".encode(), actor=actor)
    assert _import(scenario, course, "20269001,某\n".encode(), actor=scenario.tenant_admin)["added"] == 1

"""A course's roster: read from CSV or XLSX (two columns, student number and name), previewed, imported.

Every bad line is reported with its line number; a file with any bad line yields no rows, and an
import with any refused row changes nothing. A roster change reaches the course's desktop pool in
the same transaction (``tenants.hooks.roster_changed``: the classroom adds, hands over or retires
seats); the preview says beforehand what the import and the pool would do.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import Action
from audit.services import event_record
from common.errors import Forbidden, InvalidInput, NotFound
from tenants import hooks, permissions
from tenants.errors import TenantsError
from tenants.membership import foreign_accounts
from tenants.models import Course, Membership, PlatformAssignment, RosterEntry, User
from tenants.roles import TenantRole

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


def _lines(filename: str, content: bytes):
    if len(content) > MAX_BYTES:
        raise InvalidInput(_("文件过大（上限 2 MB）。"), code=TenantsError.ROSTER_TOO_LARGE)
    lower = (filename or "").lower()
    if lower.endswith(".xlsx"):
        return _xlsx_lines(content)
    if lower.endswith((".csv", ".txt")):
        return _csv_lines(content)
    raise InvalidInput(_("只支持 CSV 或 XLSX 文件。"), code=TenantsError.ROSTER_FORMAT)


def _problems(number: str, name: str, extra: list[str], seen: dict[str, int]) -> list[str]:
    """What is wrong with one data line (none: it is a student)."""
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
    if any(extra):
        problems.append(_("多出了列（只需要学号和姓名两列）"))
    return problems


def _refused(errors: list[dict]) -> InvalidInput:
    return InvalidInput(
        ngettext(
            "名单有 %(n)s 行有误，未导入任何学生。请改正后重新上传。",
            "名单有 %(n)s 行有误，未导入任何学生。请改正后重新上传。",
            len(errors),
        )
        % {"n": len(errors)},
        code=TenantsError.ROSTER_INVALID,
        detail={"errors": errors},
    )


def roster_parse(*, filename: str, content: bytes) -> list[tuple[int, str, str]]:
    """(line, student number, name) for every data line; raises InvalidInput listing every bad line."""
    rows, errors, seen = [], [], {}
    for line, cells in _lines(filename, content):
        number, name, *extra = cells + ["", ""]
        if not any(cells) or (not rows and not errors and number.lower() in HEADER_WORDS):
            continue
        problems = _problems(number, name, extra, seen)
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
        raise _refused(errors)
    if not rows:
        raise InvalidInput(_("文件中没有学生。每行应为：学号,姓名。"), code=TenantsError.ROSTER_EMPTY)
    return rows


# --- Import ------------------------------------------------------------------------------------


def _require_manage(actor: User | None, course: Course) -> None:
    """``actor`` None is the platform itself (seed_demo, a task)."""
    if actor is not None and not permissions.can_manage_course(actor, course):
        raise Forbidden(_("您不能修改该课程。"), code=TenantsError.COURSE_FORBIDDEN)


def course_roster_remove(*, actor: User | None, course: Course, user: User) -> None:
    _require_manage(actor, course)
    with transaction.atomic():
        deleted, _detail = RosterEntry.objects.filter(course=course, user=user).delete()
        if not deleted:
            raise NotFound(_("该学生不在名单中。"), code=TenantsError.NOT_ON_ROSTER)
        event_record(
            action=Action.ROSTER_CHANGED,
            actor=actor,
            target=course,
            tenant=course.tenant,
            detail={"removed": user.username},
        )
        hooks.roster_changed(course=course, actor=actor)


def _roster_match(course: Course, rows: list[tuple[int, str, str]]) -> tuple[dict[str, User], list[dict]]:
    """The account each row names, when one exists: the course's own roster first (what the teacher
    imported before), then an account with that student number, then one whose user name is the number.

    A row is refused (with its line) when it names a platform administrator's account or an account of
    another tenant (tenants.membership.foreign_accounts: an import never touches those, nor rewrites
    their student number), when its number is two accounts', or when the account its user name finds
    has another student number (another person)."""
    numbers = [number for _line, number, _name in rows]
    on_roster = {
        e.student_number: e.user
        for e in RosterEntry.objects.filter(course=course, student_number__in=numbers).select_related("user")
    }
    by_number: dict[str, list[User]] = {}
    for user in User.objects.filter(student_number__in=numbers):
        by_number.setdefault(user.student_number, []).append(user)
    by_username = {u.username: u for u in User.objects.filter(username__in=[n.lower() for n in numbers])}
    everyone = [u for users in by_number.values() for u in users] + list(by_username.values())
    foreign = foreign_accounts({u.pk for u in everyone}, course.tenant)
    admins = set(PlatformAssignment.objects.filter(user__in=everyone).values_list("user_id", flat=True))
    matched, errors = {}, []
    for line, number, _name in rows:
        user, problem = _roster_row_account(
            number, on_roster.get(number), by_number.get(number, []), by_username.get(number.lower()), foreign
        )
        if user is not None and user.pk in admins:
            problem = _("该学号属于平台管理员账号，不能加入课程。")
        if problem:
            errors.append({"line": line, "student_number": number, "message": problem})
        elif user is not None:
            matched[number] = user
    return matched, errors


def _roster_row_account(
    number: str, on_roster: User | None, numbered: list[User], named: User | None, foreign: set[int]
) -> tuple[User | None, str]:
    """(the account a row names or None, "" or why the row is refused); see ``_roster_match``."""
    if on_roster is not None:
        return on_roster, ""
    ours = [u for u in numbered if u.pk not in foreign]
    if len(ours) > 1:
        return None, _("该学号对应多个账号，请联系管理员处理重复账号。")
    if ours:
        return ours[0], ""
    if numbered:
        return numbered[0], _("该学号属于其他院系的账号，不能加入本课程。")
    if named is None:
        return None, ""
    if named.pk in foreign:
        return named, _("该学号（用户名）属于其他院系的账号，不能加入本课程。")
    if named.student_number and named.student_number != number:
        return named, _("账号 %(user)s 的学号是 %(number)s，与名单不符。") % {
            "user": named.username,
            "number": named.student_number,
        }
    return named, ""


def _matched_or_refused(course: Course, rows: list[tuple[int, str, str]]) -> dict[str, User]:
    matched, errors = _roster_match(course, rows)
    if errors:
        raise _refused(errors)
    return matched


def course_roster_preview(
    *, actor: User | None, course: Course, rows: list[tuple[int, str, str]], replace: bool = False
) -> dict:
    """What ``course_roster_import`` with these rows would do, changing nothing: the students it adds
    (and how many accounts it creates), those it removes (``replace``), how many stay, and what the
    course's desktop pool would do (``pool``: seats added, handed over, retired; a quota shortfall).
    Refused rows are refused here as they would be there."""
    _require_manage(actor, course)
    matched = _matched_or_refused(course, rows)
    entries = {e.user_id: e for e in RosterEntry.objects.filter(course=course).select_related("user")}
    added = [
        {"student_number": number, "name": name, "new_account": number not in matched}
        for _line, number, name in rows
        if number not in matched or matched[number].pk not in entries
    ]
    keep = {matched[number].pk for _line, number, _name in rows if number in matched}
    if not replace:
        keep |= set(entries)
    removed = [
        {"student_number": e.student_number, "name": e.user.display_name or e.user.username}
        for user_id, e in sorted(entries.items(), key=lambda item: item[1].student_number)
        if user_id not in keep
    ]
    new_accounts = sum(1 for a in added if a["new_account"])
    return {
        "added": added,
        "removed": removed,
        "unchanged": len(rows) - len(added),
        "created_accounts": new_accounts,
        "pool": hooks.roster_preview(course=course, keep_user_ids=keep, new_accounts=new_accounts),
    }


def _put_on_roster(course: Course, rows: list[tuple[int, str, str]], matched: dict[str, User]) -> tuple[dict, set]:
    """Accounts made where missing, the tenant's student role given, roster entries added: (counts, user ids)."""
    unusable = make_password(None)
    counts = {"created_accounts": 0, "added": 0, "unchanged": 0, "removed": 0}
    on_roster = set(RosterEntry.objects.filter(course=course).values_list("user_id", flat=True))
    members = set(
        Membership.objects.filter(tenant=course.tenant, role=TenantRole.STUDENT).values_list("user_id", flat=True)
    )
    keep = set()
    for _line, number, name in rows:
        user = matched.get(number)
        if user is None:
            user = User.objects.create(
                username=number.lower(), display_name=name, student_number=number, password=unusable
            )
            counts["created_accounts"] += 1
        elif not user.student_number:
            user.student_number = number
            user.save(update_fields=["student_number"])
        if user.pk not in members:
            Membership.objects.create(user=user, tenant=course.tenant, role=TenantRole.STUDENT)
            members.add(user.pk)
        keep.add(user.pk)
        if user.pk in on_roster:
            counts["unchanged"] += 1
        else:
            RosterEntry.objects.create(course=course, user=user, student_number=number)
            on_roster.add(user.pk)
            counts["added"] += 1
    return counts, keep


def course_roster_import(
    *, actor: User | None, course: Course, rows: list[tuple[int, str, str]], replace: bool = False
) -> dict:
    """Put the (line, student number, name) rows on the roster, all or nothing.

    Students missing as accounts are created (campus login sets their password later) and
    become students of the course's tenant. With `replace`, students not in the rows leave.
    The rows come from ``roster_parse``, which already refused malformed lines; rows naming an
    account the import may not touch are refused here (``_roster_match``). The course's desktop
    pool follows in the same transaction; what it did is under ``pool`` (absent: no pool).
    """
    _require_manage(actor, course)
    matched = _matched_or_refused(course, rows)
    with transaction.atomic():
        counts, keep = _put_on_roster(course, rows, matched)
        if replace:
            counts["removed"], _detail = RosterEntry.objects.filter(course=course).exclude(user_id__in=keep).delete()
        event_record(action=Action.ROSTER_IMPORTED, actor=actor, target=course, tenant=course.tenant, detail=counts)
        pool = hooks.roster_changed(course=course, actor=actor)
    return {**counts, "pool": pool} if pool is not None else counts

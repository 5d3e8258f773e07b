"""Bounds that no date or size may cross, whoever sends it: one source for services, API and forms.

A service checks with ``check_year``, ``check_period`` or ``check_size`` (an ``InvalidInput``
whose detail names the field, a 400 in the API); serializers and forms put ``validate_year``
and the constants below on their fields, so a page and the API refuse the same values with
the same words before the service is called.
"""

import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from common.errors import ErrorCode, InvalidInput

YEAR_MIN = 2000
YEAR_MAX = 2100
TERM_MAX_YEARS = 4
TERM_MAX_DAYS = TERM_MAX_YEARS * 366  # a course's term: a few years at most

VCPUS_MAX = 256
MEMORY_MIB_MIN = 64
MEMORY_MIB_MAX = 4 * 1024 * 1024  # 4 TiB
DISK_GIB_MAX = 64 * 1024  # 64 TiB
VOLUME_GIB_MAX = 2048
AMOUNT_MAX = 10**6  # of one resource, in a quota limit or a request
RAM_MIB_AMOUNT_MAX = AMOUNT_MAX * 1024  # memory is counted in MiB: the same 10**6 GiB
MONEY_MAX = Decimal("999999999999.99")  # billing.models.MONEY: 14 digits, 2 of them decimals

YEAR_MESSAGE = _("日期须在 %(min)s 年到 %(max)s 年之间。")
SIZE_MESSAGE = _("数值须在 %(min)s 到 %(max)s 之间。")
TERM_MESSAGE = _("学期不能长于 %(years)s 年。")


def _refuse(field: str, message: str, code: str = ErrorCode.OUT_OF_RANGE) -> None:
    raise InvalidInput(message, code=code, detail={field: [message]})


def validate_year(value: datetime.date | datetime.datetime | None) -> None:
    """A field validator (Django forms and DRF serializers): the year within YEAR_MIN..YEAR_MAX."""
    if value is not None and not YEAR_MIN <= value.year <= YEAR_MAX:
        raise ValidationError(YEAR_MESSAGE, code=ErrorCode.OUT_OF_RANGE, params={"min": YEAR_MIN, "max": YEAR_MAX})


def check_year(value: datetime.date | datetime.datetime, *, field: str) -> None:
    if not YEAR_MIN <= value.year <= YEAR_MAX:
        _refuse(field, YEAR_MESSAGE % {"min": YEAR_MIN, "max": YEAR_MAX})


def term_error(start: datetime.date, end: datetime.date) -> str | None:
    """Why a term from ``start`` to ``end`` is refused (the end's fault), or None."""
    if not (YEAR_MIN <= start.year <= YEAR_MAX and YEAR_MIN <= end.year <= YEAR_MAX):
        return None  # each date's own check says it
    if (end - start).days > TERM_MAX_DAYS:
        return str(TERM_MESSAGE % {"years": TERM_MAX_YEARS})
    return None


def check_term(start: datetime.date, end: datetime.date, *, start_field: str, end_field: str) -> None:
    """Both dates within the years, and the end at most about TERM_MAX_YEARS after the start.

    (That the end is not before the start is the caller's check: its code belongs to its app.)"""
    check_year(start, field=start_field)
    check_year(end, field=end_field)
    message = term_error(start, end)
    if message:
        _refuse(end_field, message)


def check_size(value, *, field: str, minimum, maximum) -> None:
    if value is None or not minimum <= value <= maximum:
        _refuse(field, SIZE_MESSAGE % {"min": minimum, "max": maximum})

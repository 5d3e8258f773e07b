"""Pagination that costs the same at 10 rows and at 100,000: the page's keys first, then its rows.

A list queryset with ``select_related`` joins five or six tables. Asked for one page of it ordered
by a column of the main table, MariaDB's optimizer often starts from the smallest joined table and
sorts the whole joined result in a temporary table before it can take the 50 rows of the page (on
10,000 desktops: ~60 ms for one page). Asking for the page's primary keys alone, ordered by an
index of the main table, reads only the page (~1.5 ms); the page's rows are then fetched with
their joins by primary key (~6 ms). One query more per page, the same number at any size.

The other cost that grows with the table is the page count: ``COUNT(*)`` over the visible rows
reads all of them (~10 ms at 10,000 desktops, ~100 ms at 100,000), for every page. ``row_count``
counts at most ``LARGE_COUNT + 1`` rows; a set that small (every student's and teacher's list, and
every list in the tests) gets its exact count, fresh. Only a larger set is counted in full, and that
count is kept for ``COUNT_SECONDS`` in the cache under the query's own SQL and parameters (which
carry the caller's visibility filter): an admin paging through 100,000 desktops sees a total that
may be up to half a minute old, and pays for the full count twice a minute instead of every page.

``Paginator`` is Django's, with that two-step page and that count; pages, the API's
``PageNumberPagination`` and anything else built on Django's paginator use it in place of
``django.core.paginator.Paginator``.
"""

import hashlib
from collections.abc import Callable
from functools import cached_property

from django.core import paginator
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

LARGE_COUNT = 5000
COUNT_SECONDS = 30


def query_key(prefix: str, queryset: QuerySet) -> str | None:
    """A cache key of the query's own SQL and parameters (which carry the caller's visibility filter, so
    no one is given what another may see); None for a query that can match nothing."""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return None
    return _sql_key(prefix, queryset.db, sql, params)


def _sql_key(prefix: str, db: str, sql: str, params) -> str:
    return f"{prefix}:" + hashlib.sha256(f"{db}|{sql}|{params!r}".encode()).hexdigest()


def row_count(queryset) -> int:
    """The number of rows: exact up to LARGE_COUNT, and for larger sets at most COUNT_SECONDS old.

    The keys' SQL is compiled once: it is the cache key and, wrapped, the count of at most LARGE_COUNT + 1
    rows (compiling a list's visibility filter is a good part of a list's time)."""
    if not isinstance(queryset, QuerySet):
        return len(queryset)
    if queryset.query.is_sliced:
        return queryset.count()
    counted = queryset.order_by()
    keys_only = not counted.query.combinator and not counted.query.distinct
    if keys_only:
        # The keys alone: the joins of select_related and annotations (a pool's seat counts) are neither
        # compiled nor worked out for rows only counted.
        counted = counted.values("pk")
    try:
        sql, params = counted.query.sql_with_params()
    except EmptyResultSet:
        return 0
    key = _sql_key("paging-count", counted.db, sql, params)
    number = cache.get(key)
    if number is not None:
        return number
    if keys_only:  # one column: the compiled SQL is counted as it stands (its values stay parameters)
        bounded = f"SELECT COUNT(*) FROM ({sql} LIMIT %s) counted"  # noqa: S608 - Django's own compiled SQL
        with connections[counted.db].cursor() as cursor:
            cursor.execute(bounded, [*params, LARGE_COUNT + 1])
            number = cursor.fetchone()[0]
    else:
        number = counted[: LARGE_COUNT + 1].count()
    if number > LARGE_COUNT:
        number = counted.count()
        cache.set(key, number, COUNT_SECONDS)
    return number


def page_rows(queryset, bottom: int, top: int, read: Callable[[QuerySet], QuerySet] | None = None) -> list:
    """The rows ``queryset[bottom:top]``: by primary key first when the query joins other tables.

    ``read`` (a page's own read of its rows, e.g. what they show of other tables as annotated columns)
    turns the queryset into the one the page's rows are read with, by the keys of the page; the rows
    are still filtered by the queryset, so a row that stopped being visible meanwhile is left out."""
    if not isinstance(queryset, QuerySet) or not (queryset.query.select_related or read):
        return list(queryset[bottom:top])
    keys = list(queryset.select_related(None).values_list("pk", flat=True)[bottom:top])
    if not keys:
        return []
    rows = {row.pk: row for row in (read or _same)(queryset).filter(pk__in=keys).order_by()}
    return [rows[key] for key in keys if key in rows]


def _same(queryset):
    return queryset


class Paginator(paginator.Paginator):
    """Django's paginator, with ``row_count`` and ``page_rows``; ``read`` as in ``page_rows``."""

    def __init__(self, object_list, per_page, *args, read: Callable[[QuerySet], QuerySet] | None = None, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.read = read

    @cached_property
    def count(self) -> int:
        return row_count(self.object_list)

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return self._get_page(page_rows(self.object_list, bottom, top, self.read), number, self)

"""Query-count helper: a list endpoint costs the same number of queries for few rows or many."""

from collections.abc import Callable

from django.db import connection
from django.test.utils import CaptureQueriesContext


def count_queries(fn: Callable[[], object]) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    return len(ctx.captured_queries), result


def assert_constant_queries(fetch: Callable[[], object], grow: Callable[[int], None], *, small=3, large=30):
    """`grow(n)` adds n rows; `fetch()` requests the list. Fails if the query count grows."""
    grow(small)
    few, response = count_queries(fetch)
    assert getattr(response, "status_code", 200) == 200, getattr(response, "content", b"")[:500]
    grow(large - small)
    many, response = count_queries(fetch)
    assert getattr(response, "status_code", 200) == 200, getattr(response, "content", b"")[:500]
    assert few == many, f"{few} queries for {small} rows but {many} for {large}"
    return few

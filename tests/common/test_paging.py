"""common.paging: a page of a joined list is read by its keys first, then its rows, in the same order."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.paging import Paginator, page_rows
from tenants.models import Membership
from tests.factories import TenantFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def memberships():
    tenant = TenantFactory(slug="paging")
    for n in range(23):
        member(f"pager{n:02d}", tenant, "student")
    return Membership.objects.filter(tenant=tenant).select_related("user", "tenant").order_by("-user__username")


def test_pages_hold_the_same_rows_in_the_same_order_as_slicing(memberships):
    paginator = Paginator(memberships, 10)
    pages = [list(paginator.page(n)) for n in paginator.page_range]
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [m.pk for p in pages for m in p] == list(memberships.values_list("pk", flat=True))
    assert pages[0][0].user.username == "pager22"


def test_a_joined_page_costs_two_queries_and_its_relations_none(memberships):
    with CaptureQueriesContext(connection) as queries:
        rows = page_rows(memberships, 10, 20)
        names = [(m.user.username, m.tenant.slug) for m in rows]
    assert len(queries) == 2
    assert queries[0]["sql"].startswith("SELECT `tenants_membership`.`id` AS `pk` FROM")  # the keys alone
    assert names[0] == ("pager12", "paging")


def test_a_query_without_joins_is_sliced_as_before(memberships):
    plain = memberships.select_related(None)
    with CaptureQueriesContext(connection) as queries:
        rows = page_rows(plain, 0, 5)
    assert len(queries) == 1
    assert [m.pk for m in rows] == list(plain.values_list("pk", flat=True)[:5])


def test_a_small_set_is_counted_exactly_every_time(memberships):
    from common.paging import row_count

    assert row_count(memberships) == 23
    member("pager99", memberships.first().tenant, "student")
    assert row_count(memberships) == 24  # never from the cache
    assert Paginator(memberships, 10).num_pages == 3


def test_a_large_set_is_counted_once_and_kept(memberships, monkeypatch):
    from django.core.cache import cache

    from common import paging

    monkeypatch.setattr(paging, "LARGE_COUNT", 5)
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert paging.row_count(memberships) == 23
    assert len(queries) == 2  # the bounded count, then the full one
    with CaptureQueriesContext(connection) as queries:
        assert paging.row_count(memberships) == 23
        assert paging.row_count(memberships.filter(user__username__gte="pager10")) == 13
    assert len(queries) == 2  # the first from the cache; another filter is another count
    assert paging.row_count(memberships.none()) == 0
    cache.clear()


def test_a_count_leaves_the_rows_annotations_out(memberships):
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    from common.paging import row_count

    annotated = memberships.annotate(label=Concat(F("user__username"), Value("-annotated-")))
    with CaptureQueriesContext(connection) as queries:
        assert row_count(annotated) == 23
    assert len(queries) == 1 and "-annotated-" not in queries[0]["sql"]


def test_a_count_joins_nothing_the_rows_select_related(memberships):
    from common.paging import row_count

    with CaptureQueriesContext(connection) as queries:
        assert row_count(memberships) == 23
    assert len(queries) == 1
    assert "JOIN" not in queries[0]["sql"] and "LIMIT" in queries[0]["sql"]  # bounded, the keys alone


@pytest.mark.parametrize("large", [1000, 5])
def test_distinct_union_and_sliced_sets_are_counted_right(memberships, monkeypatch, large):
    from common import paging

    monkeypatch.setattr(paging, "LARGE_COUNT", large)
    users = memberships.values("user__username")
    assert paging.row_count(memberships.values("tenant").distinct()) == 1
    assert paging.row_count(users.union(users)) == 23  # a union drops duplicates
    assert paging.row_count(users.union(users, all=True)) == 46
    assert paging.row_count(memberships[:7]) == 7
    assert paging.row_count(memberships.filter(user__username="nobody")) == 0

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

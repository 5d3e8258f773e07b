"""Page-number pagination with a page size the client may lower or raise within bounds, on the
two-step paginator of common/paging.py (a page's keys first, then its rows).

A list whose serializer has a read path of its own (``FastReadMixin.read_queryset``) has the page's
rows read the way the serializer reads them (the paginator's ``read``): by primary key, with what they
show of other tables joined in as columns. The rows are still filtered by the list's queryset, so a
row that stopped being visible between the two queries is left out, never shown.
"""

from django.db.models import QuerySet
from rest_framework import pagination

from common.paging import Paginator


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        self._read = _read_queryset(queryset, view)
        return super().paginate_queryset(queryset, request, view)

    def django_paginator_class(self, object_list, per_page):
        """DRF's paginator, made with this list's read of its rows."""
        return Paginator(object_list, per_page, read=getattr(self, "_read", None))


def _read_queryset(queryset, view):
    """The list serializer's ``read_queryset``, for a queryset of its model; else None."""
    if not isinstance(queryset, QuerySet) or queryset.query.combinator or view is None:
        return None
    get_serializer_class = getattr(view, "get_serializer_class", None)
    serializer_class = get_serializer_class() if get_serializer_class else None
    read = getattr(serializer_class, "read_queryset", None)
    meta = getattr(serializer_class, "Meta", None)
    if read is None or getattr(meta, "model", None) is not queryset.model:
        return None
    if not queryset.query.select_related and not serializer_class.reads_other_tables():
        return None  # nothing joined: the page's rows in one query
    return read

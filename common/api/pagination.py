"""Page-number pagination with a page size the client may lower or raise within bounds, on the
two-step paginator of common/paging.py (a page's keys first, then its rows)."""

from rest_framework import pagination

from common.paging import Paginator


class PageNumberPagination(pagination.PageNumberPagination):
    django_paginator_class = Paginator
    page_size_query_param = "page_size"
    max_page_size = 500

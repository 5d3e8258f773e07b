"""The URLs of a page's many rows at the cost of one ``reverse()``: each row's pk put into one reversed URL."""

from collections.abc import Callable

from django.urls import reverse

# A pk that the URL's ``<int:pk>`` accepts and no URL prefix is expected to contain.
_MARK = 9_876_543_210


def pk_url(name: str, *rest) -> Callable[[int], str]:
    """A function of a pk giving ``reverse(name, args=[pk, *rest])``, for a URL whose first argument is an
    int pk (``rest``: the same further arguments for every row, e.g. an action's verb).

    ``reverse()`` costs about 20 µs; a page of 60 rows with two links each spent 2.5 ms on it."""
    before, after = reverse(name, args=[_MARK, *rest]).rsplit(str(_MARK), 1)
    return lambda pk: f"{before}{int(pk)}{after}"

"""How an HTML view calls a service: the outcome becomes a message, then the browser moves on.

A service refuses with a ``ServiceError`` whose message is already in the user's language; the
page shows it and never turns into a 500. A service whose transaction MariaDB rolled back for another's
row locks did nothing either: that is said the same way (``Busy``), the form kept as typed. Any other
exception is a bug and is left to Django's 500 handling, which logs it.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.db import OperationalError, connection
from django.http import HttpResponseRedirect
from django.shortcuts import resolve_url

from common.db import is_lock_conflict
from common.errors import Busy, ServiceError
from common.http import safe_next

_SAME = object()


def service_call(
    request,
    fn: Callable[[], Any],
    *,
    success=None,
    next,  # named after the form field that can override it
    back=_SAME,
    form=None,
    refused: Callable | None = None,
) -> HttpResponseRedirect | None:
    """Call ``fn()`` (one service call) and say how it went.

    - ``success``: the message after it succeeded: text, ``fn(result) -> text``, or None for none.
    - ``next``: where to go after it succeeded: a URL, a URL name, or ``fn(result)`` giving one
      (the new object's page).
    - ``back``: where to go after a refusal; by default where ``next`` goes. ``None``: stay, that
      is return None, so the view renders its page again (bound forms keep what was typed).
    - ``form``: the refusal becomes the form's error instead of a message, and the view stays.
    - ``refused(request, exc)``: reports the refusal instead of the plain message (more detail).

    A ``next`` field of the request (a form's hidden input, or the query string) wins over both
    destinations when it stays on this site; one pointing elsewhere is ignored.
    """
    if form is not None:
        back = None
    elif back is _SAME:
        back = next
    if callable(back):
        raise TypeError("service_call: give `back` when `next` depends on the result")
    try:
        result = _called(fn)
    except ServiceError as exc:
        if refused is not None:
            refused(request, exc)
        elif form is not None:
            form.add_error(None, exc.message)
        else:
            messages.error(request, exc.message)
        return None if back is None else _redirect(request, back)
    if success is not None:
        messages.success(request, success(result) if callable(success) else success)
    return _redirect(request, next(result) if callable(next) else next)


def _called(fn):
    """``fn()``; a transaction of it that MariaDB rolled back for another's row locks is a refusal (Busy)."""
    try:
        return fn()
    except OperationalError as exc:
        if not is_lock_conflict(exc) or connection.in_atomic_block:
            raise  # a lock lost inside the view's own transaction: portal.middleware answers it
        raise Busy() from exc


def _redirect(request, target) -> HttpResponseRedirect:
    return HttpResponseRedirect(safe_next(request, resolve_url(target)))

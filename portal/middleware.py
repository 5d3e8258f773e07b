"""Request plumbing: a request id on every request, a clear refusal of oversized bodies, and of a request
that lost a row lock to another."""

import logging
import re
import uuid

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from common.db import is_lock_conflict
from common.errors import Busy, ErrorCode
from common.http import wants_json

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes X-Request-ID from the proxy when it is sane, makes one otherwise, echoes it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class BodySizeMiddleware:
    """Refuses a body over MAX_REQUEST_BODY before anything reads it (413, in the user's language)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BODY:
            message = _("请求内容过大（上限 %(limit)d MB）。") % {"limit": settings.MAX_REQUEST_BODY // (1024 * 1024)}
            if wants_json(request):
                return JsonResponse({"code": ErrorCode.REQUEST_TOO_LARGE, "message": message, "detail": {}}, status=413)
            return render(request, "errors/error.html", {"status": 413, "message": message}, status=413)
        return self.get_response(request)


class LockConflictMiddleware:
    """A request whose transaction MariaDB rolled back for another's row locks (a deadlock's victim, or a
    lock wait timed out) is told so and asked to try again: 503 with Retry-After, in the user's language,
    never a 500.

    Services that workers call beside each other run such a transaction again themselves
    (``common.db.retry_on_deadlock``); a web request is not run again here, as a view may have committed
    an earlier transaction before the one that lost. What the user sent is kept: the form is one step back.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_lock_conflict(exception):
            return None
        logger.warning(
            "request %s %s lost a row lock (MariaDB %s): answered 503",
            getattr(request, "request_id", "-"), request.path, exception.args[0],
        )  # fmt: skip
        busy = Busy()
        if wants_json(request):
            response = JsonResponse({"code": busy.code, "message": busy.message, "detail": {}}, status=busy.status)
        else:
            context = {"status": busy.status, "message": busy.message}
            response = render(request, "errors/error.html", context, status=busy.status)
        response["Retry-After"] = str(busy.retry_after_seconds)
        return response

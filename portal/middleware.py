"""Request plumbing: a request id on every request, and a clear refusal of oversized bodies."""

import re
import uuid

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from common.errors import ErrorCode
from common.http import wants_json

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

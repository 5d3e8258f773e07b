"""One error format for the whole API: {"code", "message", "detail"}.

Every refusal goes through here, whether DRF raised it (validation, auth, parsing) or a
service did (common.errors.ServiceError); a transaction MariaDB rolled back for another's row
locks is said as ``Busy`` (503, try again). Anything else is a bug and is left to Django's
500 handling, which logs it.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from common.db import is_lock_conflict
from common.errors import Busy, ErrorCode, ServiceError

_CODES = [
    (exceptions.ParseError, ErrorCode.MALFORMED_REQUEST, lambda: _("请求格式错误，无法解析。")),
    (exceptions.ValidationError, ErrorCode.INVALID, lambda: _("输入有误，请检查后重试。")),
    (exceptions.NotAuthenticated, ErrorCode.NOT_AUTHENTICATED, lambda: _("请先登录。")),
    (exceptions.AuthenticationFailed, ErrorCode.AUTHENTICATION_FAILED, lambda: _("身份验证失败。")),
    (exceptions.PermissionDenied, ErrorCode.PERMISSION_DENIED, lambda: _("您没有执行此操作的权限。")),
    (exceptions.NotFound, ErrorCode.NOT_FOUND, lambda: _("未找到。")),
    (exceptions.MethodNotAllowed, ErrorCode.METHOD_NOT_ALLOWED, lambda: _("不支持该请求方法。")),
    (exceptions.NotAcceptable, ErrorCode.NOT_ACCEPTABLE, lambda: _("无法提供所请求的格式。")),
    (exceptions.UnsupportedMediaType, ErrorCode.UNSUPPORTED_MEDIA_TYPE, lambda: _("不支持的内容类型。")),
    (exceptions.Throttled, ErrorCode.THROTTLED, lambda: _("请求过于频繁，请稍后再试。")),
]


def error_response(code: str, message: str, detail=None, status_code: int = 400, headers=None) -> Response:
    body = {"code": str(code), "message": str(message), "detail": detail or {}}
    return Response(body, status=status_code, headers=headers)


def _translated(exc):
    """Django's and MariaDB's exceptions that a view may raise, as the API's own."""
    if is_lock_conflict(exc):
        return Busy()
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    return exc


def exception_handler(exc, context):
    exc = _translated(exc)
    if isinstance(exc, ServiceError):
        set_rollback()
        headers = {"Retry-After": str(exc.retry_after_seconds)} if isinstance(exc, Busy) else None
        return error_response(exc.code, exc.message, exc.detail, exc.status, headers)
    if not isinstance(exc, exceptions.APIException):
        return None

    set_rollback()
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    code, message = next(
        ((code, message) for exc_type, code, message in _CODES if isinstance(exc, exc_type)),
        (ErrorCode.INVALID, lambda: str(exc.detail)),
    )
    detail = exc.detail if isinstance(exc, exceptions.ValidationError) else {}
    text = message()
    if isinstance(exc, exceptions.ParseError | exceptions.AuthenticationFailed) and exc.detail:
        detail = {"reason": str(exc.detail)}
    status_code = exc.status_code
    if isinstance(exc, exceptions.NotAuthenticated):
        status_code = status.HTTP_401_UNAUTHORIZED
    return error_response(code, text, detail, status_code, headers)

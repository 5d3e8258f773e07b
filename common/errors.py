"""The one error type services raise; the API turns it into {"code", "message", "detail"}.

Services know nothing of HTTP, but every refusal has a status class: invalid input (400),
forbidden (403), not found (404) or a conflict with the current state (409). Messages are
translated at raise time, in the language of the request being served.
"""

from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class ErrorCode(StrEnum):
    """Codes shared by every app. Apps add their own enums beside their services."""

    INVALID = "invalid"
    OUT_OF_RANGE = "out_of_range"
    MALFORMED_REQUEST = "malformed_request"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    REQUEST_TOO_LARGE = "request_too_large"
    THROTTLED = "throttled"
    CONFLICT = "conflict"
    INVALID_TRANSITION = "invalid_transition"
    BUSY = "busy"
    SERVER_ERROR = "server_error"


class ServiceError(Exception):
    status = 400
    code: str = ErrorCode.INVALID
    default_message = _("请求无效。")

    def __init__(self, message=None, *, code=None, detail=None, status=None):
        self.message = str(message if message is not None else self.default_message)
        if code is not None:
            self.code = str(code)
        if status is not None:
            self.status = status
        self.detail = detail or {}
        super().__init__(self.message)


class InvalidInput(ServiceError):
    status = 400
    code = ErrorCode.INVALID
    default_message = _("输入有误。")


class Forbidden(ServiceError):
    status = 403
    code = ErrorCode.PERMISSION_DENIED
    default_message = _("您没有执行此操作的权限。")


class NotFound(ServiceError):
    status = 404
    code = ErrorCode.NOT_FOUND
    default_message = _("未找到。")


class Conflict(ServiceError):
    status = 409
    code = ErrorCode.CONFLICT
    default_message = _("操作与当前状态冲突。")


class Busy(ServiceError):
    """The request's transaction lost a row lock to another one's and was rolled back: nothing was done,
    and the same request a moment later will most likely succeed."""

    status = 503
    code = ErrorCode.BUSY
    retry_after_seconds = 2
    default_message = _("系统繁忙：另一项操作正在使用相同的数据，您的操作未能完成。请稍后重试。")


class InvalidTransition(Conflict):
    code = ErrorCode.INVALID_TRANSITION
    default_message = _("当前状态下不能执行此操作。")

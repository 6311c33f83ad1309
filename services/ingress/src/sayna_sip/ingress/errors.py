"""The ingress error tree and its one mapping to HTTP answers.

Domain code raises an `IngressError` subclass; Litestar's own exceptions (validation,
body size, 404/405) are mapped here too, so every error body has the same shape:
`{"error": "<code>", "message": "<text>"}`.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE

from sayna_sip.common.labels import ErrorCode
from sayna_sip.common.logs import quote, shorten
from sayna_sip.ingress.schemas import ErrorBody

log = logging.getLogger("sayna_sip.ingress")


class IngressError(Exception):
    """An answer other than success; `status` and `code` say which."""

    status = 500
    code: str = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(IngressError):
    status = 400
    code: str = ErrorCode.INVALID_BODY


class Unauthorized(IngressError):
    status = 401
    code: str = ErrorCode.UNAUTHORIZED


class Forbidden(IngressError):
    status = 403
    code: str = ErrorCode.FORBIDDEN


class NotFound(IngressError):
    status = 404
    code: str = ErrorCode.NOT_FOUND


class Conflict(IngressError):
    status = 409
    code: str = ErrorCode.CONFIG_HOOK


class Gone(IngressError):
    status = 410
    code: str = ErrorCode.EVENT_EXPIRED


class PayloadTooLarge(IngressError):
    status = 413
    code: str = ErrorCode.BODY_TOO_LARGE


class UnsupportedMediaType(IngressError):
    status = 415
    code: str = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class Unavailable(IngressError):
    status = 503
    code: str = ErrorCode.NATS_UNAVAILABLE


# Litestar's own errors by status: a fixed code each (its detail text is for humans).
_HTTP_CODES: dict[int, str] = {
    400: ErrorCode.INVALID_BODY,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BODY_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


def _response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(ErrorBody(error=code, message=message), status_code=status, headers=headers)


def ingress_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    assert isinstance(exc, IngressError)
    return _response(exc.status, exc.code, exc.message)


def http_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Litestar's own exceptions, in our error shape."""
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ValidationException):
        message = _validation_message(exc)
        if "`array` of length >= 1" in message:  # the schema's minItems: keep its old code
            return _response(
                400, ErrorCode.EMPTY_REQUEST, f"'{_first_key(exc)}' must list at least one entry"
            )
        return _response(400, _validation_code(exc), shorten(message, 300))
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        limit = request.route_handler.resolve_request_max_body_size()
        return _response(413, ErrorCode.BODY_TOO_LARGE, f"request body exceeds {limit} bytes")
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return _response(exc.status_code, code, exc.detail or "error", exc.headers)


def nesting_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """A JSON body nested deeper than the decoder's stack (RecursionError)."""
    return _response(400, ErrorCode.INVALID_BODY, "request body is nested too deeply")


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error(
        "event=unhandled_error path=%s error=%s", request.url.path, quote(repr(exc)), exc_info=exc
    )
    return _response(500, ErrorCode.INTERNAL_ERROR, "internal error")


def _validation_code(exc: ValidationException) -> str:
    """invalid_query when a query parameter is at fault, else invalid_body."""
    details = exc.extra if isinstance(exc.extra, list) else []
    sources = {d.get("source") for d in details if isinstance(d, dict)}
    return ErrorCode.INVALID_QUERY if "query" in sources else ErrorCode.INVALID_BODY


def _first_key(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    keys = [str(d.get("key", "")) for d in details if isinstance(d, dict)]
    return next((k for k in keys if k), "body")


def _validation_message(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = [str(d.get("message", "")) for d in details if isinstance(d, dict)]
    return "; ".join(p for p in parts if p) or exc.detail

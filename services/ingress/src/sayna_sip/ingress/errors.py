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

from sayna_sip.common.logs import quote
from sayna_sip.ingress.schemas import ErrorBody

log = logging.getLogger("sayna_sip.ingress")


class IngressError(Exception):
    """An answer other than success; `status` and `code` say which."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(IngressError):
    status = 400
    code = "invalid_body"


class Unauthorized(IngressError):
    status = 401
    code = "unauthorized"


class NotFound(IngressError):
    status = 404
    code = "not_found"


class Conflict(IngressError):
    status = 409
    code = "conflict"


class PayloadTooLarge(IngressError):
    status = 413
    code = "body_too_large"


class Unavailable(IngressError):
    status = 503
    code = "unavailable"


# Litestar's own errors by status: a fixed code each (its detail text is for humans).
_HTTP_CODES = {
    400: "invalid_body",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
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
                400, "empty_request", f"'{_first_key(exc)}' must list at least one entry"
            )
        return _response(400, "invalid_body", message)
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        limit = request.route_handler.resolve_request_max_body_size()
        return _response(413, "body_too_large", f"request body exceeds {limit} bytes")
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return _response(exc.status_code, code, exc.detail or "error", exc.headers)


def nesting_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """A JSON body nested deeper than the decoder's stack (RecursionError)."""
    return _response(400, "invalid_body", "request body is nested too deeply")


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error(
        "event=unhandled_error path=%s error=%s", request.url.path, quote(repr(exc)), exc_info=exc
    )
    return _response(500, "internal_error", "internal error")


def _first_key(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    keys = [str(d.get("key", "")) for d in details if isinstance(d, dict)]
    return next((k for k in keys if k), "body")


def _validation_message(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = [str(d.get("message", "")) for d in details if isinstance(d, dict)]
    return "; ".join(p for p in parts if p) or exc.detail

"""Every refusal of the service: one exception hierarchy, one renderer, never an echo of the input.

Code anywhere in a request (a middleware, the route, the check, the limiter) refuses by
raising a :class:`PublicError` subclass; the one handler registered by
:func:`register_error_handler` turns it into the constant padded body of its status. Each
class fixes its status, code and message, so nothing about the input can reach an answer.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.padded_json import PaddedJSON
from app.request_note import note_unavailable

logger = logging.getLogger("app.errors")

#: Seconds a client is told to wait; constant, so it reveals no limit or window.
RETRY_AFTER_RATE_LIMITED = "60"
RETRY_AFTER_UNAVAILABLE = "30"


class PublicError(Exception):
    """A request refused with a constant answer; subclasses fix status, code and message."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    message: ClassVar[str] = "An unexpected error occurred."
    retry_after: ClassVar[str | None] = None


class InvalidRequest(PublicError):
    """Any malformed query: wrong JSON, a missing or extra field, an invalid identity."""

    status_code = 422
    code = "invalid_request"
    message = "The request is not valid: check the three fields and try again."


class PayloadTooLarge(PublicError):
    """The body passed ``SELFCHECK_MAX_BODY_BYTES`` (counted as bytes arrive)."""

    status_code = 413
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(PublicError):
    """The body is not declared as ``application/json``."""

    status_code = 415
    code = "unsupported_media_type"
    message = "Send the request as application/json."


class RequestTimeout(PublicError):
    """The body was not complete within ``SELFCHECK_BODY_TIMEOUT_S`` of the head."""

    status_code = 408
    code = "request_timeout"
    message = "The request took too long to arrive."


class RateLimited(PublicError):
    """Any limit: one answer whatever the bucket, so nothing says which limit or its value."""

    status_code = 429
    code = "rate_limited"
    message = "Too many checks. Please try again later."
    retry_after = RETRY_AFTER_RATE_LIMITED


class Unavailable(PublicError):
    """Something the check needs is down (the rate-limit store): fail closed."""

    status_code = 503
    code = "unavailable"
    message = "The service is temporarily unavailable. Please try again later."
    retry_after = RETRY_AFTER_UNAVAILABLE
    #: What the operator's log says failed (the runbook quotes it).
    what_failed: ClassVar[str] = "a component the check needs is unavailable"
    #: The ``cause`` label of ``selfcheck_unavailable_total``: no room (overload) by default.
    cause: ClassVar[str] = "overload"


class InternalError(PublicError):
    """An unexpected exception, answered by the catch-all middleware."""


class NotFound(PublicError):
    """No such path."""

    status_code = 404
    code = "not_found"
    message = "No such resource."


class MethodNotAllowed(PublicError):
    """The path exists, the method does not."""

    status_code = 405
    code = "method_not_allowed"
    message = "Method not allowed."


def render_error(renderer: PaddedJSON, error: PublicError | type[PublicError]) -> Response:
    """The constant padded answer of ``error``'s class."""
    headers = {"retry-after": error.retry_after} if error.retry_after else None
    payload = {"error": error.code, "message": error.message}
    return renderer.response(payload, error.status_code, headers)


def register_error_handlers(app: FastAPI, renderer: PaddedJSON) -> None:
    """The one place errors become answers: every :class:`PublicError`, wherever it is raised,
    and the router's own 404 and 405, mapped onto the same constant bodies."""

    async def public_error(request: Request, exc: Exception) -> Response:
        error = exc if isinstance(exc, PublicError) else InternalError()
        if isinstance(error, Unavailable):
            note_unavailable(error.cause)
        if isinstance(error, Unavailable) and error.__cause__ is not None:
            # The cause's type tells an operator what failed; its message may quote input.
            logger.warning("%s (%s)", error.what_failed, type(error.__cause__).__name__)
        return render_error(renderer, error)

    async def routing_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        error = {404: NotFound, 405: MethodNotAllowed}.get(status, InvalidRequest)
        return render_error(renderer, error)

    app.add_exception_handler(PublicError, public_error)
    app.add_exception_handler(HTTPException, routing_error)

"""The constant error answers of /v1/check: one body per status, never an echo of the input."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from app.padded_json import PaddedJSON

#: Seconds a client is told to wait; constant, so it reveals no limit or window.
RETRY_AFTER_RATE_LIMITED = "60"
RETRY_AFTER_UNAVAILABLE = "30"


@dataclass(frozen=True, slots=True)
class PublicError:
    status_code: int
    code: str
    message: str
    retry_after: str | None = None


INVALID_REQUEST = PublicError(
    422, "invalid_request", "The request is not valid: check the three fields and try again."
)
PAYLOAD_TOO_LARGE = PublicError(413, "payload_too_large", "The request body is too large.")
UNSUPPORTED_MEDIA_TYPE = PublicError(
    415, "unsupported_media_type", "Send the request as application/json."
)
RATE_LIMITED = PublicError(
    429, "rate_limited", "Too many checks. Please try again later.", RETRY_AFTER_RATE_LIMITED
)
UNAVAILABLE = PublicError(
    503,
    "unavailable",
    "The service is temporarily unavailable. Please try again later.",
    RETRY_AFTER_UNAVAILABLE,
)
INTERNAL_ERROR = PublicError(500, "internal_error", "An unexpected error occurred.")
NOT_FOUND = PublicError(404, "not_found", "No such resource.")
METHOD_NOT_ALLOWED = PublicError(405, "method_not_allowed", "Method not allowed.")


def error_response(renderer: PaddedJSON, error: PublicError) -> Response:
    headers = {"retry-after": error.retry_after} if error.retry_after else None
    payload = {"error": error.code, "message": error.message}
    return renderer.response(payload, error.status_code, headers)

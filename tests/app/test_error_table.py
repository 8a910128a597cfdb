"""The public error table, pinned: each refusal's status, code, message and Retry-After.

These are the constant answers clients and the widget rely on (and docs/OPERATIONS.md
quotes); a change to one must be deliberate, so it shows here. The handler's mapping of
router errors and the operator's log line for a 503 are checked too.
"""

from __future__ import annotations

import logging

import orjson
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from app.errors import (
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PublicError,
    RateLimited,
    RequestTimeout,
    Unavailable,
    UnsupportedMediaType,
    register_error_handlers,
    render_error,
)
from app.padded_json import PaddedJSON

TABLE: list[tuple[type[PublicError], int, str, str, str | None]] = [
    (InvalidRequest, 422, "invalid_request",
     "The request is not valid: check the three fields and try again.", None),
    (PayloadTooLarge, 413, "payload_too_large", "The request body is too large.", None),
    (UnsupportedMediaType, 415, "unsupported_media_type",
     "Send the request as application/json.", None),
    (RequestTimeout, 408, "request_timeout", "The request took too long to arrive.", None),
    (RateLimited, 429, "rate_limited", "Too many checks. Please try again later.", "60"),
    (Unavailable, 503, "unavailable",
     "The service is temporarily unavailable. Please try again later.", "30"),
    (InternalError, 500, "internal_error", "An unexpected error occurred.", None),
    (NotFound, 404, "not_found", "No such resource.", None),
    (MethodNotAllowed, 405, "method_not_allowed", "Method not allowed.", None),
]  # fmt: skip
SIZE = 4096


@pytest.mark.parametrize(("error", "status", "code", "message", "retry_after"), TABLE)
def test_each_refusal_renders_its_constant_answer(
    error: type[PublicError], status: int, code: str, message: str, retry_after: str | None
) -> None:
    response = render_error(PaddedJSON(SIZE), error)
    assert response.status_code == status
    body = orjson.loads(response.body)
    assert (body["error"], body["message"]) == (code, message)
    assert response.headers.get("retry-after") == retry_after
    assert len(response.body) == SIZE


def test_the_table_covers_every_public_error() -> None:
    def subclasses(cls: type[PublicError]) -> set[type[PublicError]]:
        return {c for s in cls.__subclasses__() for c in {s, *subclasses(s)}}

    listed = {row[0] for row in TABLE}
    # Subclasses elsewhere (the store's and the token's 503) inherit a row of the table.
    assert all(any(issubclass(c, row) for row in listed) for c in subclasses(PublicError))
    assert Unavailable.what_failed == "a component the check needs is unavailable"


async def test_the_handlers_map_router_errors_and_log_what_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    register_error_handlers(app, PaddedJSON(SIZE))
    public = app.exception_handlers[PublicError]
    routing = app.exception_handlers[HTTPException]

    async def status_of(handler: object, exc: Exception) -> tuple[int, str]:
        response = await handler(None, exc)  # type: ignore[operator]
        return response.status_code, orjson.loads(response.body)["error"]

    assert await status_of(routing, HTTPException(404)) == (404, "not_found")
    assert await status_of(routing, HTTPException(405)) == (405, "method_not_allowed")
    assert await status_of(routing, HTTPException(400)) == (422, "invalid_request")
    assert await status_of(public, RuntimeError("x")) == (500, "internal_error")
    assert await status_of(public, RateLimited()) == (429, "rate_limited")

    class StoreDown(Unavailable):
        what_failed = "rate-limit store unavailable"

    failure = StoreDown()
    failure.__cause__ = ConnectionRefusedError("a message that may quote input")
    with caplog.at_level(logging.WARNING, logger="app.errors"):
        assert await status_of(public, failure) == (503, "unavailable")
        assert await status_of(public, Unavailable()) == (503, "unavailable")  # no cause
    lines = [r.getMessage() for r in caplog.records if r.name == "app.errors"]
    assert lines == ["rate-limit store unavailable (ConnectionRefusedError)"]

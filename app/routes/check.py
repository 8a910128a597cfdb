"""POST /v1/check. No ``from __future__ import annotations`` here: FastAPI resolves the
signature through slowapi's wrapper, whose module globals would not know our names."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app.check_service import CheckService
from app.errors import PayloadTooLarge, RequestTimeout
from app.rate_limit import RateLimits
from app.routes.paths import CHECK_PATH
from app.schemas import CheckAnswer, CheckRequest, ErrorBody


@dataclass(frozen=True, slots=True)
class BufferedBody:
    """The request body, or the refusal of an oversize or late one, held until the limits
    have run."""

    content: bytes
    refusal: PayloadTooLarge | RequestTimeout | None = None

    def read(self) -> bytes:
        if self.refusal is not None:
            raise self.refusal
        return self.content


async def read_body(request: Request) -> BufferedBody:
    # BodyLimitMiddleware has already bounded and buffered it. An oversize or late body is
    # refused only once the route's limits have counted the attempt, like any other attempt.
    try:
        return BufferedBody(await request.body())
    except (PayloadTooLarge, RequestTimeout) as refusal:
        return BufferedBody(b"", refusal)


RawBody = Annotated[BufferedBody, Depends(read_body)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    408: {"model": ErrorBody, "description": "Body incomplete after SELFCHECK_BODY_TIMEOUT_S"},
    413: {"model": ErrorBody, "description": "Body larger than SELFCHECK_MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "Content-Type is not application/json"},
    422: {"model": ErrorBody, "description": "Malformed query (one constant body)"},
    429: {
        "model": ErrorBody,
        "description": "Rate limited (one constant body whatever the limit)",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    500: {"model": ErrorBody, "description": "Unexpected error (constant body)"},
    503: {
        "model": ErrorBody,
        "description": "Rate-limit store unavailable: the service fails closed",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
}


def build_check_router(limits: RateLimits) -> APIRouter:
    router = APIRouter()

    @limits.guard
    def check(request: Request, body: RawBody) -> Response:
        service: CheckService = request.state.service
        return service.answer(request.headers, body.read())

    # slowapi's wrapper is synchronous when the endpoint is, so its storage calls run in
    # the thread pool too: a slow rate-limit store never blocks the event loop.
    router.add_api_route(
        CHECK_PATH,
        check,
        methods=["POST"],
        response_model=None,
        responses={
            200: {"model": CheckAnswer, "description": "Answer (same size either way)"},
            **_ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CheckRequest.model_json_schema()}},
            }
        },
        summary="Was this identity among the exposed records?",
    )
    return router

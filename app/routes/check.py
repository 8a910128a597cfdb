"""POST /v1/check: the body is bounded and buffered by the middleware, the rest is
CheckService.answer in a worker thread."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from app.admission.buckets import Subject
from app.check_service import CheckService
from app.client_address import client_ip
from app.errors import PayloadTooLarge, RequestTimeout
from app.routes.paths import CHECK_PATH
from app.schemas import CheckAnswer, CheckRequest, ErrorBody, SubmittedAnswer
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class BufferedBody:
    """The request body, or the refusal of an oversize or late one, held until it is counted
    as junk."""

    content: bytes
    refusal: PayloadTooLarge | RequestTimeout | None = None


async def read_body(request: Request) -> BufferedBody:
    # BodyLimitMiddleware has already bounded and buffered it. An oversize or late body is
    # refused only once the junk limit has counted the attempt, like any other refused body.
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


def build_check_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    # Synchronous, so FastAPI runs it in the thread pool: store calls and Argon2 block.
    def check(request: Request, body: RawBody) -> Response:
        service: CheckService = request.state.service
        address = client_ip(request.scope, settings.trusted_proxies)
        if body.refusal is not None:
            service.refuse_junk(Subject(address), body.refusal)
        return service.answer(request.headers, body.content, address)

    router.add_api_route(
        CHECK_PATH,
        check,
        methods=["POST"],
        response_model=None,
        responses={
            200: {
                "model": CheckAnswer,
                "description": "Answer (same size either way). In private delivery every valid "
                f"query gets the one '{SubmittedAnswer.__name__}' shape instead, status "
                "'submitted', padded to the same size",
            },
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

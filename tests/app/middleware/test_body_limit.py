"""Bodies are counted as they arrive: over SELFCHECK_MAX_BODY_BYTES is the constant 413."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, RequestTimeout
from app.middleware.body_limit import BodyLimitMiddleware
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of, envelope, without_padding
from tests.support.dataset import Dataset

JSON = {"content-type": "application/json"}
LIMIT = 1024


def padded_to(body: dict[str, Any], size: int) -> bytes:
    """Valid JSON of exactly ``size`` bytes (trailing whitespace is legal JSON)."""
    raw = orjson.dumps(body)
    return raw + b" " * (size - len(raw))


async def test_the_limit_is_exact_with_a_content_length(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    _, http = await app_factory(max_body_bytes=LIMIT, **GENEROUS_LIMITS)
    probe = dataset.by_expected("affected")[0]
    at_limit = await http.post(CHECK, content=padded_to(body_of(probe), LIMIT), headers=JSON)
    over = await http.post(CHECK, content=padded_to(body_of(probe), LIMIT + 1), headers=JSON)
    assert at_limit.status_code == 200
    assert envelope(over) == (413, *envelope(at_limit)[1:])
    assert without_padding(over) == {
        "error": PayloadTooLarge.code,
        "message": PayloadTooLarge.message,
    }
    assert probe.last_name.encode() not in over.content


async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    _, http = await app_factory(max_body_bytes=LIMIT, **GENEROUS_LIMITS)
    reference = await http.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 1
            yield b" " * 256

    request = http.build_request("POST", CHECK, content=endless(), headers=JSON)
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await http.send(request)
    assert envelope(response) == (413, *envelope(reference)[1:])
    # 256-byte chunks: the fifth passes 1024 bytes; nothing much after it is read.
    assert sent <= 6


async def test_a_chunked_body_under_the_limit_is_answered(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    _, http = await app_factory(max_body_bytes=LIMIT, **GENEROUS_LIMITS)
    raw = padded_to(body_of(dataset.by_expected("affected")[0]), LIMIT)

    async def in_pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 100):
            yield raw[start : start + 100]

    response = await http.post(CHECK, content=in_pieces(), headers=JSON)
    assert response.status_code == 200
    assert orjson.loads(response.content)["status"] == "affected"


async def test_a_lying_content_length_does_not_get_past_the_count() -> None:
    """A small declared length does not let a large body through: bytes are counted."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": CHECK,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"10")],
    }
    chunks = [b" " * 600, b" " * 600, b"{}"]
    seen: list[Message] = []

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        raise AssertionError("the body cap answers through the app's error handler, not here")

    async def reads_the_body(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())

    middleware = BodyLimitMiddleware(reads_the_body, max_bytes=LIMIT)
    with pytest.raises(PayloadTooLarge):
        await middleware(scope, receive, send)
    assert seen == []  # the app never saw a byte of the over-limit body
    assert chunks == [b"{}"]  # the last chunk was never read


async def test_a_body_slower_than_the_timeout_gets_the_padded_408_and_counts(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    """A client dripping its body holds the connection for the timeout, then spends its budget."""
    limits = {**GENEROUS_LIMITS, "limits_junk": "2/minute"}  # a refused body is junk
    _, http = await app_factory(body_timeout_s=0.3, **limits)
    probe = dataset.by_expected("affected")[0]
    raw = orjson.dumps(body_of(probe))

    async def stalled() -> AsyncIterator[bytes]:
        yield raw[:10]
        await asyncio.sleep(3)
        yield raw[10:]

    answers = []
    for _ in range(3):
        started = time.perf_counter()
        answers.append(await http.post(CHECK, content=stalled(), headers=JSON))
        assert time.perf_counter() - started < 1.5  # the timeout, not the client's 3 s
    assert [a.status_code for a in answers] == [408, 408, 429]
    assert without_padding(answers[0]) == {
        "error": RequestTimeout.code,
        "message": RequestTimeout.message,
    }
    assert {len(a.content) for a in answers} == {8192}
    assert probe.last_name.encode() not in answers[0].content

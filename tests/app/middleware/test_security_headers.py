"""Security headers on every response; CORS only for SELFCHECK_ALLOWED_ORIGINS, POST only.

The Server header of the real uvicorn process is checked in test_floor_process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lookup_index import KeyedHasher
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of, envelope
from tests.support.dataset import Dataset

ORIGIN = "https://cabinet-test.example"
JSON = {"content-type": "application/json"}


def requests_of_every_kind(dataset: Dataset) -> dict[str, dict[str, Any]]:
    probe = dataset.by_expected("affected")[0]
    return {
        "hit": {"method": "POST", "url": CHECK, "json": body_of(probe)},
        "miss": {
            "method": "POST",
            "url": CHECK,
            "json": body_of(dataset.by_expected("not_found")[0]),
        },
        "422": {"method": "POST", "url": CHECK, "json": {"nir": 1}},
        "415": {"method": "POST", "url": CHECK, "content": b"{}"},
        "413": {"method": "POST", "url": CHECK, "content": b" " * 5000, "headers": JSON},
        "405": {"method": "GET", "url": CHECK},
        "404": {"method": "GET", "url": "/nowhere"},
        "healthz": {"method": "GET", "url": "/healthz"},
        "readyz": {"method": "GET", "url": "/readyz"},
        "docs": {"method": "GET", "url": "/docs"},
        "openapi": {"method": "GET", "url": "/openapi.json"},
    }


def assert_security_headers(response: httpx.Response, name: str) -> None:
    headers = response.headers
    assert headers["strict-transport-security"].startswith("max-age="), name
    assert int(headers["strict-transport-security"].split("=")[1].split(";")[0]) >= 31536000
    assert headers["x-content-type-options"] == "nosniff", name
    assert headers["referrer-policy"] == "no-referrer", name
    assert "frame-ancestors" in headers["content-security-policy"], name
    assert "unsafe-eval" not in headers["content-security-policy"], name
    assert "server" not in headers, name
    assert "content-encoding" not in headers, name


async def test_every_response_carries_the_security_headers(
    app_factory: Callable[..., Any], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, http = await app_factory(docs_enabled=True, allowed_origins=[ORIGIN], **GENEROUS_LIMITS)
    headers = {"accept-encoding": "gzip, deflate, br", "origin": ORIGIN}
    for name, request in requests_of_every_kind(dataset).items():
        request_headers = {**headers, **request.pop("headers", {})}
        response = await http.request(**request, headers=request_headers)
        assert_security_headers(response, name)
        if request["url"] == CHECK:
            assert response.headers["cache-control"] == "no-store", name
    preflight = await http.options(
        CHECK, headers={"origin": ORIGIN, "access-control-request-method": "POST"}
    )
    assert_security_headers(preflight, "preflight")

    def broken(self: KeyedHasher, canonical: bytes) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(KeyedHasher, "digest", broken)
    crashed = await http.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))
    assert crashed.status_code == 500
    assert_security_headers(crashed, "500")


async def test_the_api_csp_forbids_everything(client: httpx.AsyncClient) -> None:
    csp = (await client.get("/healthz")).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


async def test_an_allowed_origin_gets_post_and_content_type_only(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    _, http = await app_factory(allowed_origins=[ORIGIN], **GENEROUS_LIMITS)
    preflight = await http.options(
        CHECK,
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-methods"] == "POST"
    allowed = {
        h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")
    }
    # Starlette always lists the CORS-safelisted headers; content-type is the one we need.
    assert allowed <= {"accept", "accept-language", "content-language", "content-type"}
    assert "content-type" in allowed
    assert "access-control-allow-credentials" not in preflight.headers
    for method, extra in (("PUT", ""), ("POST", "authorization"), ("POST", "x-requested-with")):
        refused = await http.options(
            CHECK,
            headers={
                "origin": ORIGIN,
                "access-control-request-method": method,
                "access-control-request-headers": extra,
            },
        )
        assert refused.status_code == 400, (method, extra)
    answer = await http.post(
        CHECK, json=body_of(dataset.by_expected("affected")[0]), headers={"origin": ORIGIN}
    )
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in answer.headers


async def test_other_origins_get_no_cors_headers(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    _, http = await app_factory(allowed_origins=[ORIGIN], **GENEROUS_LIMITS)
    for origin in ("https://evil.example", ORIGIN + ".evil.example", "null"):
        preflight = await http.options(
            CHECK, headers={"origin": origin, "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers, origin
        assert preflight.status_code == 400
        answer = await http.post(
            CHECK, json=body_of(dataset.by_expected("affected")[0]), headers={"origin": origin}
        )
        assert "access-control-allow-origin" not in answer.headers, origin


async def test_without_allowed_origins_there_is_no_cors_at_all(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    _, http = await app_factory(allowed_origins=[], **GENEROUS_LIMITS)
    preflight = await http.options(
        CHECK, headers={"origin": ORIGIN, "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405
    answer = await http.post(
        CHECK, json=body_of(dataset.by_expected("affected")[0]), headers={"origin": ORIGIN}
    )
    assert not any(name.startswith("access-control-") for name in answer.headers)


async def test_cors_headers_are_the_same_on_answers_and_errors(
    app_factory: Callable[..., Any], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The widget must be able to read a 413 or a 500 too, and the header set stays uniform."""
    _, http = await app_factory(allowed_origins=[ORIGIN], **GENEROUS_LIMITS)
    headers = {"origin": ORIGIN}
    answer = await http.post(
        CHECK, json=body_of(dataset.by_expected("affected")[0]), headers=headers
    )
    too_large = await http.post(CHECK, content=b" " * 5000, headers={**headers, **JSON})
    invalid = await http.post(CHECK, json={"nir": 1}, headers=headers)
    assert envelope(too_large) == (413, *envelope(answer)[1:])
    assert envelope(invalid) == (422, *envelope(answer)[1:])

    def broken(self: KeyedHasher, canonical: bytes) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(KeyedHasher, "digest", broken)
    crashed = await http.post(
        CHECK, json=body_of(dataset.by_expected("affected")[0]), headers=headers
    )
    assert envelope(crashed) == (500, *envelope(answer)[1:])

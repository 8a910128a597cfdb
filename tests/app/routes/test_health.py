"""/healthz and /readyz: alive and ready, and nothing about counts, paths or versions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from app.main import create_app
from app.settings import Settings
from tests.support.dataset import Dataset


def assert_reveals_nothing(response: httpx.Response, dataset: Dataset) -> None:
    text = response.text
    # The loaded set's build ids (random hex, issue 12) are the one thing with digits.
    if "index_id" in response.json():
        index_id = response.json()["index_id"]
        assert index_id is None or re.fullmatch(r"[0-9a-f]{16}(\+[0-9a-f]{16})*", index_id)
        text = text.replace(str(index_id), "")
    assert not re.search(r"\d", text), text  # no count, size, version or time
    assert "/" not in text, text
    for secret in (str(dataset.index), dataset.index.name, str(dataset.directory), "test-incident"):
        assert secret not in text
    assert response.headers["cache-control"] == "no-store"


async def test_healthz_says_alive_only(client: httpx.AsyncClient, dataset: Dataset) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert_reveals_nothing(response, dataset)


async def test_readyz_says_ready_once_the_index_is_loaded(
    client: httpx.AsyncClient, dataset: Dataset
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["index"] == "loaded"
    assert_reveals_nothing(response, dataset)


async def test_readyz_is_503_before_start_up(
    make_settings: Callable[..., Settings], dataset: Dataset
) -> None:
    """Without the lifespan (the index not opened), liveness holds and readiness does not."""
    app = create_app(make_settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/healthz")).status_code == 200
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert_reveals_nothing(response, dataset)


async def test_health_routes_are_not_in_the_public_schema(app_factory: Callable[..., Any]) -> None:
    _, http = await app_factory(docs_enabled=True)
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert "/healthz" not in paths
    assert "/readyz" not in paths


async def test_readyz_is_the_constant_404_to_the_public(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    """It says when the store is down, the moment an attacker wants: not for everyone."""
    _, http = await app_factory(client_ip="198.51.100.7")
    async with http:
        readyz = await http.get("/readyz")
        unknown = await http.get("/nowhere")
        healthz = await http.get("/healthz")
    assert readyz.status_code == unknown.status_code == 404
    assert readyz.json()["error"] == unknown.json()["error"] == "not_found"
    assert len(readyz.content) == len(unknown.content)
    assert "rate_limit_store" not in readyz.text
    assert healthz.status_code == 200  # liveness stays public


async def test_readyz_answers_the_allowed_networks_and_the_proxy(
    app_factory: Callable[..., Any],
) -> None:
    allowed = {"health_allowed": "10.20.0.0/16", "trusted_proxies": "192.0.2.10"}
    for ip, status in [("10.20.3.4", 200), ("192.0.2.10", 200), ("10.21.0.1", 404)]:
        _, http = await app_factory(client_ip=ip, **allowed)
        async with http:
            assert (await http.get("/readyz")).status_code == status, ip


async def test_readyz_relayed_for_an_internet_client_is_refused(
    app_factory: Callable[..., Any],
) -> None:
    """Through the proxy, the client is the X-Forwarded-For hop, not the proxy itself."""
    _, http = await app_factory(client_ip="192.0.2.10", trusted_proxies="192.0.2.10")
    async with http:
        relayed = await http.get("/readyz", headers={"x-forwarded-for": "203.0.113.9"})
        forged = await http.get("/readyz", headers={"x-forwarded-for": "127.0.0.1, 203.0.113.9"})
    assert relayed.status_code == forged.status_code == 404

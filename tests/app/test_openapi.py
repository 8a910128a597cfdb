"""OpenAPI documents every answer of /v1/check when SELFCHECK_DOCS_ENABLED; nothing otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.app.helpers import CHECK, ERROR_KEYS


async def test_the_check_route_documents_every_status_and_the_request(
    app_factory: Callable[..., Any],
) -> None:
    _, http = await app_factory(docs_enabled=True)
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    operation = spec["paths"][CHECK]["post"]
    assert {"200", "413", "415", "422", "429", "503"} <= set(operation["responses"])
    for status in ("429", "503"):
        assert "Retry-After" in operation["responses"][status]["headers"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request["additionalProperties"] is False
    assert set(request["required"]) == {"nir", "birth_date", "last_name"}
    assert request["properties"]["nir"]["maxLength"] <= 40
    assert request["properties"]["last_name"]["maxLength"] <= 100
    assert request["properties"]["birth_date"]["maxLength"] == 10
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    answer_schema = spec["components"]["schemas"][answer["$ref"].rsplit("/", 1)[1]]
    assert answer_schema["properties"]["status"]["enum"] == ["affected", "not_found"]
    error = operation["responses"]["422"]["content"]["application/json"]["schema"]
    error_schema = spec["components"]["schemas"][error["$ref"].rsplit("/", 1)[1]]
    assert set(error_schema["properties"]) == ERROR_KEYS
    docs = await http.get("/docs")
    assert docs.status_code == 200
    assert "openapi.json" in docs.text


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_without_docs_enabled_there_is_nothing_to_read(
    app_factory: Callable[..., Any], path: str
) -> None:
    _, http = await app_factory(docs_enabled=False)
    response = await http.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"

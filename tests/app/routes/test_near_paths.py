"""Paths next to /v1/check get the constant 404: no redirect that escapes the contract."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.app.helpers import CHECK, body_of
from tests.support.dataset import Dataset


@pytest.mark.parametrize("path", [f"{CHECK}/", f"{CHECK}//", f"{CHECK}/x", "/v1/check.json"])
async def test_near_paths_get_the_constant_404_never_a_redirect(
    generous: httpx.AsyncClient, dataset: Dataset, path: str
) -> None:
    probe = dataset.by_expected("affected")[0]
    unknown = await generous.post("/nowhere")
    response = await generous.post(
        path,
        content=orjson.dumps(body_of(probe)),
        headers={"content-type": "application/json", "host": "attacker.example"},
    )
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "attacker.example" not in response.text
    assert response.json()["error"] == unknown.json()["error"] == "not_found"
    assert len(response.content) == len(unknown.content) == 8192

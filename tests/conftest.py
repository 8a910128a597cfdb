"""Fixtures shared by all tests: a generated dataset, app settings, an in-process client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from tests.support.dataset import CACHE_ENV, Dataset, cached_dataset, make_dataset
from tests.support.servers import RedisServer, redis_server
from tests.support.softhsm import SoftHsm, init_token


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    cache = os.environ.get(CACHE_ENV)
    if cache:  # mutation runs: one dataset for every mutant's session
        return cached_dataset(Path(cache))
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture
def make_settings(dataset: Dataset) -> Callable[..., Settings]:
    """Settings for the test dataset; the floor defaults to 0 so unit tests run fast."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "index_path": dataset.index,
            "allow_test_profile": True,  # the dataset uses the cheap `test` profile
            "key_file": dataset.key,
            "response_floor_ms": 0,
            "hash_concurrency": 2,
            "pow_profile": "test",  # challenges cost microseconds to make and to solve
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def app_factory(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Any]]:
    """Build an app, run its lifespan, and return (app, client factory)."""
    managers: list[LifespanManager] = []

    async def build(
        client_ip: str = "127.0.0.7", **overrides: Any
    ) -> tuple[FastAPI, httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        manager = LifespanManager(app, startup_timeout=30)  # 5 s is short under mutmut
        await manager.__aenter__()
        managers.append(manager)
        transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 40000))
        return app, httpx.AsyncClient(transport=transport, base_url="http://testserver")

    yield build
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)


@pytest.fixture
async def client(app_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    _, http = await app_factory()
    async with http:
        yield http


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the whole session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A fresh SoftHSM2 token for the session (Debian's softhsm2, installed by make test)."""
    token = init_token(tmp_path_factory.mktemp("softhsm"))
    with pytest.MonkeyPatch.context() as patch:
        # Read by the library when first loaded in this process, and by child processes.
        patch.setenv("SOFTHSM2_CONF", str(token.conf))
        yield token

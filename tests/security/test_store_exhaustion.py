"""A full Redis and a read-only replica fail closed with the uniform 503, as the README says.

Filling the store's memory is an attack anyone can try (every client leaves
counters behind); a failover can leave the API on a read-only replica. Neither
may turn into unlimited checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_py

from app.settings import Settings
from tests.support.dataset import Dataset
from tests.support.rate_limits import LIFTED, check_body, in_process, valid_probes
from tests.support.servers import RedisServer, redis_server

pytestmark = [pytest.mark.security, pytest.mark.redis]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def _fill(store: redis_py.Redis) -> None:
    """Write until Redis refuses (it raises then)."""
    for filler in range(100_000):
        store.set(f"filler:{filler}", b"x" * 4096)


def _on(make_settings: Callable[..., Settings], url: str) -> Settings:
    return make_settings(**LIFTED, rate_limit_storage=url, rate_limit_timeout_ms=300)


async def test_a_full_redis_answers_the_padded_503(
    make_settings: Callable[..., Settings], own_redis: RedisServer, dataset: Dataset
) -> None:
    bodies = iter([check_body(p) for p in valid_probes(dataset.probes)])
    store = redis_py.Redis.from_url(own_redis.url)
    async with in_process(_on(make_settings, own_redis.url)) as app:
        answered = await app.check("127.0.6.1", next(bodies))
        assert answered.status_code == 200
        # noeviction (the suite's and compose's policy), and no room left for a counter.
        assert store.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        used = int(store.info("memory")["used_memory"])
        store.config_set("maxmemory", str(used + 64 * 1024))
        with pytest.raises(redis_py.exceptions.ResponseError, match="maxmemory"):
            _fill(store)
        refused = [await app.check(f"127.0.6.{i}", next(bodies)) for i in range(2, 6)]
    store.config_set("maxmemory", "0")
    assert {r.status_code for r in refused} == {503}
    assert {len(r.content) for r in refused} == {len(answered.content)}
    assert {r.json()["error"] for r in refused} == {"unavailable"}


async def test_a_read_only_replica_answers_the_padded_503(
    make_settings: Callable[..., Settings], tmp_path: Path, dataset: Dataset
) -> None:
    bodies = iter([check_body(p) for p in valid_probes(dataset.probes)])
    with redis_server(tmp_path / "primary") as primary, redis_server(tmp_path / "replica") as rep:
        redis_py.Redis.from_url(rep.url).replicaof("127.0.0.1", primary.port)
        async with in_process(_on(make_settings, rep.url)) as app:
            refused = [await app.check(f"127.0.7.{i}", next(bodies)) for i in range(1, 4)]
        async with in_process(_on(make_settings, primary.url)) as app:
            answered = await app.check("127.0.7.9", next(bodies))
    assert answered.status_code == 200
    assert {r.status_code for r in refused} == {503}
    assert {len(r.content) for r in refused} == {len(answered.content)}

"""Real uvicorn processes on one real Redis: shared limits, real client sockets, shutdown.

Distinct client networks are distinct loopback source addresses (any of
127.0.0.0/8 binds on Linux); no proxy header is needed for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.dataset import Dataset
from tests.support.rate_limits import CHECK, check_body, flush, keyspace, valid_probes
from tests.support.servers import ApiServer, RedisServer, api_server, redis_server

pytestmark = pytest.mark.slow


def api_env(dataset: Dataset, store: str, **extra: str) -> dict[str, str]:
    return {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_RATE_LIMIT_STORAGE": store,
        "SELFCHECK_LIMITS_PER_IDENTITY": "10000/day",
        "SELFCHECK_LIMITS_PER_NIR_PREFIX": "10000/day",
        "SELFCHECK_HASH_CONCURRENCY": "1",
        "SELFCHECK_POW_PROFILE": "test",
        "SELFCHECK_LOG_LEVEL": "warning",
        **extra,
    }


def client_from(address: str, connections: int = 100) -> httpx.AsyncClient:
    """A client whose sockets are bound to ``address``: the server sees that peer."""
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=connections)
    )
    return httpx.AsyncClient(transport=transport, timeout=20)


async def post_all(
    sends: list[tuple[str, str, dict[str, str], dict[str, str]]],
) -> list[int]:
    """(source address, server url, body, headers) all at once; the statuses in order."""
    clients = {address: client_from(address) for address, *_ in sends}
    try:
        answers = await asyncio.gather(
            *(
                clients[address].post(url + CHECK, json=body, headers=headers)
                for address, url, body, headers in sends
            )
        )
    finally:
        for http in clients.values():
            await http.aclose()
    return [answer.status_code for answer in answers]


@pytest.fixture
def clean_redis(redis: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server, empty before and after the test."""
    flush(redis.url)
    yield redis
    flush(redis.url)


async def test_several_processes_and_workers_share_every_limit_through_redis(
    dataset: Dataset, clean_redis: RedisServer, tmp_path: Path
) -> None:
    redis = clean_redis
    bodies = [check_body(p) for p in valid_probes(dataset.probes)]
    env = api_env(dataset, redis.url, SELFCHECK_GLOBAL_LIMIT="20/minute")
    with contextlib.ExitStack() as stack:
        # Three workers in all: `selfcheck serve` with two uvicorn workers, and another host.
        servers: list[ApiServer] = [
            stack.enter_context(api_server({**env, "SELFCHECK_WORKERS": str(workers)}, log))
            for workers, log in ((2, tmp_path / "api-a.log"), (1, tmp_path / "api-b.log"))
        ]
        urls = [server.url for server in servers]

        # 100 concurrent checks from one network, half on each process: 5 (the default).
        one_network = [("127.0.0.7", urls[i % 2], bodies[i], {}) for i in range(100)]
        statuses = await post_all(one_network)
        assert statuses.count(200) == 5, statuses
        assert statuses.count(429) == 95

        # From 127.0.0.1 with a forged X-Forwarded-For per request: uvicorn trusts that
        # header from 127.0.0.1 by default, but `selfcheck serve` turns it off and no proxy
        # is trusted, so all six count on 127.0.0.1.
        forged = []
        for i in range(6):
            send = (
                "127.0.0.1",
                urls[i % 2],
                bodies[100 + i],
                {"x-forwarded-for": f"198.51.100.{i}"},
            )
            forged += await post_all([send])
        assert forged == [200] * 5 + [429]

        # A burst from 30 other networks: the global ceiling (20/minute) has 10 left.
        burst = [(f"127.0.1.{i}", urls[i % 2], bodies[110 + i], {}) for i in range(1, 31)]
        statuses = await post_all(burst)
        assert statuses.count(200) == 10, statuses
        assert statuses.count(429) == 20

    stored = "\n".join(key for key, _ in keyspace(redis.url))
    assert "127.0." not in stored
    assert "198.51.100." not in stored


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


async def test_a_hung_redis_neither_admits_nor_blocks_shutdown(
    dataset: Dataset, own_redis: RedisServer, tmp_path: Path
) -> None:
    bodies = [check_body(p) for p in valid_probes(dataset.probes)]
    env = api_env(dataset, own_redis.url, SELFCHECK_RATE_LIMIT_TIMEOUT_MS="300")
    with api_server(env, tmp_path / "api.log") as server:
        async with client_from("127.0.0.7") as http:
            assert (await http.post(server.url + CHECK, json=bodies[0])).status_code == 200
            own_redis.pause()
            try:
                assert (await http.get(server.url + "/healthz")).status_code == 200
                started = time.monotonic()
                assert (await http.get(server.url + "/readyz")).status_code == 503
                assert time.monotonic() - started < 2.0
                in_flight = asyncio.gather(
                    *(http.post(server.url + CHECK, json=body) for body in bodies[1:9]),
                    return_exceptions=True,
                )
                await asyncio.sleep(0.1)  # the checks are now waiting on the hung store
                server.process.send_signal(signal.SIGTERM)
                started = time.monotonic()
                while server.process.poll() is None:
                    assert time.monotonic() - started < 8.0, "shutdown blocked by a hung Redis"
                    await asyncio.sleep(0.05)
                answers = await in_flight
            finally:
                own_redis.resume()
    statuses = [a.status_code for a in answers if isinstance(a, httpx.Response)]
    assert statuses, answers
    assert set(statuses) == {503}

"""End to end: the identity buckets' store fails, the rest of it answers; checks get the 503.

A real redis-server whose ACL lets the API's user reach every key except the identity
buckets' (the partial outage of a Redis Cluster whose node holding identity keys is
down), and `python -m app serve`. While identity keys are refused, every valid check is
the uniform 503 (same size as an answer, held to the floor), the rest of the store keeps
working (junk is still counted and refused with its 422) and checks resume by themselves
when the keys come back. A fail-open identity bucket would answer 200
(docs/MUTATION.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_py

from lookup_index.pepper import load_pepper
from tests.app.helpers import CHECK, dataset_env
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import check_body, valid_probes
from tests.support.servers import ApiServer, RedisServer, api_server, redis_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FLOOR_MS = 100
USER, PASSWORD = "selfcheck", "identity-outage-test"
#: Every key the API writes but the identity buckets' (nir, namebirth, u-nir, u-namebirth).
WITHOUT_IDENTITY = [
    "~selfcheck:LIMITER/v1/net/*",
    "~selfcheck:LIMITER/v1/v4-24/*",
    "~selfcheck:LIMITER/v1/v6-*",
    "~selfcheck:LIMITER/v1/addr/*",
    "~selfcheck:LIMITER/v1/pow-spent/*",
    "~selfcheck:{LIMITER/*",  # every sliding-window counter (ceilings, junk, meters)
]


def grant(admin: redis_py.Redis, patterns: list[str]) -> None:
    admin.execute_command(
        "ACL", "SETUSER", USER, "on", f">{PASSWORD}", "resetkeys", "+@all", *patterns
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("identity-outage-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    dataset: Dataset, store: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    admin = redis_py.Redis.from_url(store.url, socket_timeout=5)
    grant(admin, ["~*"])
    admin.close()
    log: Path = tmp_path_factory.mktemp("identity-outage") / "server.log"
    env = dataset_env(
        dataset,
        SELFCHECK_RATE_LIMIT_STORAGE=f"redis://{USER}:{PASSWORD}@127.0.0.1:{store.port}/0",
        SELFCHECK_RATE_LIMIT_TIMEOUT_MS="300",
        SELFCHECK_RESPONSE_FLOOR_MS=str(FLOOR_MS),
    )
    with api_server(env, log) as running:
        yield running


def test_an_identity_bucket_outage_fails_closed_with_the_uniform_503(
    server: ApiServer, store: RedisServer, dataset: Dataset
) -> None:
    probes = iter(valid_probes(dataset.probes))
    pepper = load_pepper(dataset.key)
    admin = redis_py.Redis.from_url(store.url, socket_timeout=5)
    addresses = iter(f"127.0.90.{i}" for i in range(1, 200))

    def check(*, proven: bool = False, body: object = None) -> tuple[httpx.Response, float]:
        payload = body if body is not None else check_body(next(probes))
        if proven:
            payload = {**payload, "altcha": presolved(pepper)}  # type: ignore[dict-item]
        transport = httpx.HTTPTransport(local_address=next(addresses))
        with httpx.Client(transport=transport, base_url=server.url, timeout=10) as http:
            started = time.perf_counter()
            answer = http.post(CHECK, json=payload)
            return answer, time.perf_counter() - started

    try:
        before = [check()[0], check(proven=True)[0]]
        assert [a.status_code for a in before] == [200, 200]
        grant(admin, WITHOUT_IDENTITY)
        during = [check(), check(), check(proven=True), check(proven=True)]
        junk, _ = check(body={"nir": 1})
        grant(admin, ["~*"])
        after = [check()[0], check(proven=True)[0]]
    finally:
        grant(admin, ["~*"])
        admin.close()

    assert [a.status_code for a, _ in during] == [503] * len(during), server.log_text()[-2000:]
    assert {a.json()["error"] for a, _ in during} == {"unavailable"}
    assert {len(a.content) for a, _ in during} == {len(before[0].content)}
    assert {a.headers["content-type"] for a, _ in during} == {before[0].headers["content-type"]}
    assert all(seconds >= FLOOR_MS / 1000 for _, seconds in during)
    assert junk.status_code == 422  # the rest of the store answered: a partial outage
    assert [a.status_code for a in after] == [200, 200]
    assert "rate-limit store unavailable" in server.log_text()

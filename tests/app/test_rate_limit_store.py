"""The shared store failing: stopped, hung, restarted; and Sentinel / Cluster pass-through.

Each test gets its own redis-server (the session one is never broken). Every
phase asserts that no check is ever answered 200 while the store is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.admission.buckets import Admission, Stage, Subject
from app.padded_json import PaddedJSON
from app.rate_limit import RateLimits, StorageUnavailable, storage_options
from app.settings import Settings
from app.state import StartupRefused, open_service
from lookup_index import canonical_identity
from tests.support.dataset import Dataset
from tests.support.rate_limits import (
    LIFTED,
    InProcessApp,
    check_body,
    flush,
    in_process,
    keyspace,
    valid_probes,
)
from tests.support.servers import RedisServer, free_port, redis_server, stop_process, wait_for_port

TIMEOUT_MS = 250
#: A hung store costs one socket timeout (plus the connect); this leaves room for a busy CI box.
BOUND = 2 * TIMEOUT_MS / 1000 + 1.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def bodies(dataset: Dataset) -> list[dict[str, str]]:
    return [check_body(probe) for probe in valid_probes(dataset.probes)]


def on_store(make_settings: Callable[..., Settings], url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        **LIFTED,
        "rate_limit_storage": url,
        "rate_limit_timeout_ms": TIMEOUT_MS,
    }
    return make_settings(**{**values, **overrides})


async def timed_check(
    app: InProcessApp, body: dict[str, str], address: str = "127.0.0.9"
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = await app.check(address, body)
    return answer, time.monotonic() - started


async def test_a_stopped_then_hung_redis_fails_closed_and_checks_resume_by_themselves(
    make_settings: Callable[..., Settings],
    own_redis: RedisServer,
    bodies: list[dict[str, str]],
) -> None:
    feed = iter(bodies)
    while_down: list[httpx.Response] = []

    async def while_store_is_down(app: InProcessApp, http: httpx.AsyncClient) -> None:
        for _ in range(3):
            answer, seconds = await timed_check(app, next(feed))
            assert seconds < BOUND
            while_down.append(answer)
        # A check is waiting on the store: the event loop must still answer liveness.
        slow = asyncio.create_task(timed_check(app, next(feed)))
        await asyncio.sleep(0.02)
        started = time.monotonic()
        assert (await http.get("/healthz")).status_code == 200
        assert time.monotonic() - started < TIMEOUT_MS / 1000
        answer, _ = await slow
        while_down.append(answer)
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["rate_limit_store"] == "unavailable"

    async def while_store_is_up(app: InProcessApp, http: httpx.AsyncClient) -> None:
        for _ in range(2):
            answer, _ = await timed_check(app, next(feed))
            assert answer.status_code == 200
        assert (await http.get("/readyz")).status_code == 200

    settings = on_store(make_settings, own_redis.url)
    async with in_process(settings) as app, app.client("127.0.0.2") as http:
        await while_store_is_up(app, http)
        own_redis.stop()  # refused connections
        await while_store_is_down(app, http)
        own_redis.start()  # same port, empty: pooled connections are stale
        await while_store_is_up(app, http)
        own_redis.pause()  # accepts connections, never answers
        try:
            await while_store_is_down(app, http)
        finally:
            own_redis.resume()
        await while_store_is_up(app, http)

    assert [answer.status_code for answer in while_down] == [503] * len(while_down)
    first = while_down[0]
    assert first.headers["retry-after"]
    assert first.json()["error"] == "unavailable"
    shapes = {(a.status_code, len(a.content), a.headers["content-type"]) for a in while_down}
    assert len(shapes) == 1


async def test_the_503_is_padded_and_held_to_the_response_floor(
    make_settings: Callable[..., Settings], own_redis: RedisServer, bodies: list[dict[str, str]]
) -> None:
    settings = on_store(make_settings, own_redis.url, response_floor_ms=150)
    async with in_process(settings) as app:
        own_redis.stop()
        answer, seconds = await timed_check(app, bodies[0])
    assert answer.status_code == 503
    assert len(answer.content) == settings.response_size
    assert seconds >= 0.15


def test_slowapi_environment_cannot_bring_back_an_in_memory_fallback(
    make_settings: Callable[..., Settings],
    own_redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # slowapi (the challenge issuance limit) would read these over its arguments and fail
    # open: the service refuses to start while one is set, naming it in one line.
    monkeypatch.setenv("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", "true")
    monkeypatch.setenv("RATELIMIT_SWALLOW_ERRORS", "true")
    settings = on_store(make_settings, own_redis.url)
    with pytest.raises(StartupRefused) as refused:
        open_service(settings, RateLimits(settings), PaddedJSON(settings.response_size))
    assert str(refused.value).startswith(
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED, RATELIMIT_SWALLOW_ERRORS set: slowapi"
    )
    assert "\n" not in str(refused.value)


# --- the options really reach redis-py -------------------------------------------------------


def test_storage_options_bound_every_wait() -> None:
    plain = storage_options("redis://127.0.0.1:6379/0", 0.3)
    assert plain["socket_timeout"] == plain["socket_connect_timeout"] == 0.3
    assert plain["wrap_exceptions"] is True
    sentinel = storage_options("redis+sentinel://127.0.0.1:26379/selfcheck", 0.3)
    assert sentinel["sentinel_kwargs"]["socket_timeout"] == 0.3
    assert sentinel["sentinel_kwargs"]["socket_connect_timeout"] == 0.3
    assert sentinel["use_replicas"] is False
    cluster = storage_options("redis+cluster://127.0.0.1:7000", 0.3)
    for retry in (plain["retry"], sentinel["retry"], sentinel["sentinel_kwargs"]["retry"]):
        assert retry.get_retries() == 0
    assert cluster["retry"].get_retries() == 0
    assert storage_options("memory://", 0.3) == {"wrap_exceptions": True}
    with pytest.raises(ValueError, match="not supported"):
        storage_options("mongodb://127.0.0.1", 0.3)


def test_the_timeouts_reach_the_redis_connections(make_settings: Callable[..., Settings]) -> None:
    limits = RateLimits(on_store(make_settings, "redis://127.0.0.1:1/0"))
    connection = limits.storage.storage.connection_pool.make_connection()
    assert connection.socket_timeout == TIMEOUT_MS / 1000
    assert connection.socket_connect_timeout == TIMEOUT_MS / 1000
    assert connection.retry.get_retries() == 0
    # Listed, so that redis-py closes a connection after a timeout (no late reply reuse).
    assert isinstance(RedisTimeoutError(), connection.retry._supported_errors)


# --- Sentinel and Cluster: real servers, the URI passed through to limits ----------------------


@contextlib.contextmanager
def sentinel_for(master: RedisServer, directory: Path) -> Iterator[int]:
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor selfcheck 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds selfcheck 60000\n"
    )
    binary = shutil.which("redis-server")
    assert binary is not None
    process = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        stop_process(process)


def cluster_port() -> int:
    """A free port whose cluster bus (port + 10000) is a valid, free port too."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10000):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


@contextlib.contextmanager
def one_node_cluster(directory: Path) -> Iterator[RedisServer]:
    """A real Redis Cluster of one node holding every slot."""
    directory.mkdir(parents=True, exist_ok=True)
    port = cluster_port()
    binary = shutil.which("redis-server")
    assert binary is not None
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--cluster-enabled", "yes",
            "--cluster-config-file", str(directory / "nodes.conf"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(port, directory, process)
    try:
        wait_for_port(port)
        client = redis_py.Redis(port=port, socket_timeout=5)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "one-node cluster never became ok"
            time.sleep(0.05)
        client.close()
        yield server
    finally:
        server.resume()
        stop_process(process)


async def exactly_the_limit_then_fail_closed(
    settings: Settings, store: RedisServer, bodies: list[dict[str, str]], url: str
) -> None:
    async with in_process(settings) as app:
        statuses = await app.statuses(("127.0.0.9", body) for body in bodies[:4])
        assert statuses == [200, 200, 200, 429]
        assert any(key.startswith("selfcheck:") for key, _ in keyspace(url))
        store.pause()
        try:
            # Another address: 127.0.0.9 is known refused until its window has room, so
            # the gate answers it 429 without the store (app/admission/gate.py).
            answer, seconds = await timed_check(app, bodies[4], "127.0.0.11")
        finally:
            store.resume()
        assert answer.status_code == 503
        assert seconds < BOUND
        # Immediately after the store answers again, and counting exactly: a connection
        # left open after the timeout would hand its late reply to the next command.
        recovered = await app.statuses(("127.0.0.10", body) for body in bodies[5:9])
        assert recovered == [200, 200, 200, 429]


async def test_a_sentinel_uri_passes_through_with_bounded_waits(
    make_settings: Callable[..., Settings],
    own_redis: RedisServer,
    tmp_path: Path,
    bodies: list[dict[str, str]],
) -> None:
    with sentinel_for(own_redis, tmp_path / "sentinel") as port:
        url = f"redis+sentinel://127.0.0.1:{port}/selfcheck"
        settings = on_store(make_settings, url, limits_per_network="3/minute")
        await exactly_the_limit_then_fail_closed(settings, own_redis, bodies, own_redis.url)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with one_node_cluster(tmp_path_factory.mktemp("cluster")) as node:
        yield node


async def test_a_cluster_uri_passes_through_with_bounded_waits(
    make_settings: Callable[..., Settings], cluster: RedisServer, bodies: list[dict[str, str]]
) -> None:
    flush(cluster.url)
    url = f"redis+cluster://127.0.0.1:{cluster.port}"
    settings = on_store(make_settings, url, limits_per_network="3/minute")
    await exactly_the_limit_then_fail_closed(settings, cluster, bodies, cluster.url)


def test_identity_buckets_fail_closed_on_a_cluster_error(
    make_settings: Callable[..., Settings], cluster: RedisServer, dataset: Dataset
) -> None:
    """Cluster clients raise errors that are not RedisError: they must still mean 503."""
    flush(cluster.url)
    probe = valid_probes(dataset.probes)[0]
    identity = canonical_identity(probe.nir, probe.birth_date, probe.last_name)
    limits = RateLimits(on_store(make_settings, f"redis+cluster://127.0.0.1:{cluster.port}"))
    limits.bind_pepper(b"p" * 32)

    def hit_identity() -> bool:
        return limits.admit(Stage.IDENTITY, Admission.PROVEN, Subject(None, identity))

    assert hit_identity()
    cluster.pause()
    started = time.monotonic()
    try:
        with pytest.raises(StorageUnavailable):
            hit_identity()
    finally:
        cluster.resume()
    assert time.monotonic() - started < BOUND
    assert hit_identity()  # the client found the node again by itself
    limits.storage.storage.close()  # type: ignore[attr-defined]  # limits' redis client

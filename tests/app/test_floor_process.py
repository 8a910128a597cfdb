"""The API as deployed: `python -m app serve` (uvicorn) on loopback, the response floor on.

What only a real server shows: the time a client waits, the headers uvicorn
adds (Date, Server), chunked uploads on the wire, and what the process
writes to its log.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from scipy.stats import ks_2samp

from lookup_index.generator import Probe
from tests.app.helpers import CHECK, body_of, dataset_env, envelope, submitted_values
from tests.support.dataset import Dataset
from tests.support.servers import ApiServer, api_server

pytestmark = pytest.mark.slow

FLOOR_MS = 150
FLOOR = FLOOR_MS / 1000
#: The client binds this loopback address, so the log can be searched for it.
CLIENT_IP = "127.0.0.77"
SAMPLES_PER_OUTCOME = 150
IN_FLIGHT = 8


@pytest.fixture(scope="module")
def server(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    log = tmp_path_factory.mktemp("floor-server") / "server.log"
    env = dataset_env(
        dataset, SELFCHECK_RESPONSE_FLOOR_MS=str(FLOOR_MS), SELFCHECK_LOG_LEVEL="info"
    )
    with api_server(env, log) as running:
        yield running


@pytest.fixture
async def http(server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=CLIENT_IP)
    async with httpx.AsyncClient(
        transport=transport, base_url=server.url, timeout=10, headers={"accept-encoding": "gzip"}
    ) as client:
        yield client


async def _timed(client: httpx.AsyncClient, **kwargs: object) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await client.post(CHECK, **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - started, response


async def _interleaved(
    client: httpx.AsyncClient, hits: list[Probe], misses: list[Probe], rounds: int
) -> tuple[list[float], list[float]]:
    """Hit, miss, hit, miss... with a few in flight, so both see the same load."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    times: dict[str, list[float]] = {"affected": [], "not_found": []}

    async def one(probe: Probe) -> None:
        async with gate:
            elapsed, response = await _timed(client, json=body_of(probe))
        assert response.status_code == 200, response.content[:100]
        assert orjson.loads(response.content)["status"] == probe.expected
        times[probe.expected].append(elapsed)

    order = [p for i in range(rounds) for p in (hits[i % len(hits)], misses[i % len(misses)])]
    await asyncio.gather(*(one(p) for p in order))
    return times["affected"], times["not_found"]


async def test_no_answer_leaves_before_the_floor_and_hits_time_like_misses(
    http: httpx.AsyncClient, dataset: Dataset
) -> None:
    hits, misses = dataset.by_expected("affected"), dataset.by_expected("not_found")
    hit_times, miss_times = await _interleaved(http, hits, misses, SAMPLES_PER_OUTCOME)
    assert min(hit_times + miss_times) >= FLOOR
    p_value = ks_2samp(hit_times, miss_times).pvalue
    if p_value <= 0.01:
        # Under the null hypothesis one run in a hundred lands here by chance; a real
        # difference in timing fails a second, independent sample too.
        random.Random(7).shuffle(hits)
        hit_times, miss_times = await _interleaved(http, hits, misses, SAMPLES_PER_OUTCOME)
        p_value = ks_2samp(hit_times, miss_times).pvalue
    assert p_value > 0.01, (sorted(hit_times)[::15], sorted(miss_times)[::15])


async def test_errors_also_wait_for_the_floor(http: httpx.AsyncClient, dataset: Dataset) -> None:
    probe = dataset.by_expected("affected")[0]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b" " * 512

    cases = {
        422: {"json": {**body_of(probe), "extra": 1}},
        415: {"content": orjson.dumps(body_of(probe)), "headers": {"content-type": "text/plain"}},
        413: {"content": b" " * 4096, "headers": {"content-type": "application/json"}},
    }
    for status, kwargs in cases.items():
        elapsed, response = await _timed(http, **kwargs)
        assert (response.status_code, len(response.content)) == (status, 8192)
        assert elapsed >= FLOOR, status
    elapsed, response = await _timed(
        http, content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers  # really chunked on the wire
    assert (response.status_code, len(response.content)) == (413, 8192)
    assert orjson.loads(response.content)["error"] == "payload_too_large"
    assert elapsed >= FLOOR


async def test_on_the_wire_hit_miss_and_error_differ_only_in_status(
    http: httpx.AsyncClient, dataset: Dataset
) -> None:
    hit, miss = dataset.by_expected("affected")[2], dataset.by_expected("not_found")[2]
    answers = [await http.post(CHECK, json=body_of(p)) for p in (hit, miss)]
    invalid = await http.post(CHECK, json={**body_of(hit), "nir": 1})
    assert envelope(answers[0]) == envelope(answers[1])
    assert envelope(invalid) == (422, *envelope(answers[0])[1:])
    names = [name for name, _ in answers[0].headers.raw]
    assert b"date" in [n.lower() for n in names]  # uvicorn's; the only header allowed to vary
    for response in (*answers, invalid):
        assert "server" not in response.headers
        assert "content-encoding" not in response.headers
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "default-src 'none'" in response.headers["content-security-policy"]
    for path in ("/healthz", "/readyz", "/nowhere"):
        response = await http.get(path)
        assert "server" not in response.headers, path
        assert response.headers["x-content-type-options"] == "nosniff", path


async def test_the_server_log_holds_no_submitted_value_nor_the_client_address(
    http: httpx.AsyncClient, dataset: Dataset, server: ApiServer
) -> None:
    probes = dataset.by_expected("affected")[:3] + dataset.by_expected("not_found")[:3]
    invalid = dataset.by_expected("invalid")[:3]
    text = {"content-type": "text/plain"}
    await asyncio.gather(
        *(http.post(CHECK, json=body_of(p)) for p in probes + invalid),
        *(http.post(CHECK, json={**body_of(p), "extra": p.last_name}) for p in probes),
        *(http.post(CHECK, content=orjson.dumps(body_of(p)), headers=text) for p in probes),
        http.get(f"/v1/check?nir={probes[0].nir}"),
    )
    log = server.log_text()
    assert "Uvicorn running" in log or "Application startup complete" in log  # we read the real log
    assert CLIENT_IP not in log
    for probe in probes + invalid:
        for value in submitted_values(probe):
            assert value not in log
    assert "Traceback" not in log

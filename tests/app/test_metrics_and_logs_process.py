"""/metrics and the request log of a real `selfcheck serve` with two workers; a real Prometheus.

Known traffic (hits, misses, malformed bodies, junk refusals, an invented path) goes
to two worker processes sharing one Redis; the launcher's exposition sums them
(multiprocess mode) and Debian's `prometheus`, started here on loopback, must show
exactly those counts through its HTTP API. Neither the exposition nor Prometheus's
series may hold a submitted value, an outcome or a client address. The same run's log
has one JSON line per request with exactly the documented fields, and no personal data.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lookup_index.generator import Probe
from lookup_index.pepper import generate_pepper_file
from tests.app.helpers import CHECK, body_of, dataset_env, submitted_values
from tests.support.dataset import Dataset
from tests.support.incidents import TwoIncidents, build_two_incidents, index_id, replace_index
from tests.support.servers import (
    ApiServer,
    RedisServer,
    api_server,
    free_port,
    stop_process,
    wait_for_port,
)

pytestmark = pytest.mark.slow

HITS, MISSES, MALFORMED, JUNK_LIMIT = 6, 4, 5, 3


@dataclass
class Scraped:
    server: ApiServer
    metrics_url: str
    multiproc_dir: Path
    probes: list[Any]
    served: Path


async def _traffic(url: str, dataset: Dataset) -> list[Any]:
    hits = dataset.by_expected("affected")[:HITS]
    misses = dataset.by_expected("not_found")[:MISSES]
    invalid = dataset.by_expected("invalid")[:MALFORMED]
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        # Concurrent, on several connections: both workers take some.
        answers = await asyncio.gather(*(http.post(CHECK, json=body_of(p)) for p in hits + misses))
        assert [a.status_code for a in answers] == [200] * (HITS + MISSES)
        statuses = [(await http.post(CHECK, json=body_of(p))).status_code for p in invalid]
        assert statuses == [422] * JUNK_LIMIT + [429] * (MALFORMED - JUNK_LIMIT)
        assert (await http.get("/" + hits[0].last_name)).status_code == 404
    return hits + misses + invalid


@pytest.fixture(scope="module")
def scraped(
    dataset: Dataset, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scraped]:
    work = tmp_path_factory.mktemp("metrics")
    served = work / "served.bin"  # a copy: the reload test, last, replaces it
    shutil.copyfile(dataset.index, served)
    limit_key = work / "limits.key"
    generate_pepper_file(limit_key)  # a keyspace of its own in the session's Redis
    metrics_port = free_port()
    env = dataset_env(
        dataset,
        SELFCHECK_INDEX_PATH=str(served),
        SELFCHECK_WORKERS="2",
        SELFCHECK_RATE_LIMIT_STORAGE=redis.url,
        SELFCHECK_RATE_LIMIT_KEY_FILE=str(limit_key),
        SELFCHECK_LIMITS_JUNK=f"{JUNK_LIMIT}/minute",
        SELFCHECK_RESPONSE_FLOOR_MS="20",
        SELFCHECK_METRICS_PORT=str(metrics_port),
        SELFCHECK_INDEX_WATCH="false",
        PROMETHEUS_MULTIPROC_DIR=str(work / "multiproc"),
    )
    with api_server(env, work / "api.log") as server:
        wait_for_port(metrics_port)
        probes = asyncio.run(_traffic(server.url, dataset))
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        yield Scraped(server, metrics_url, work / "multiproc", probes, served)


def _samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_two_workers_are_summed_in_one_exposition(scraped: Scraped) -> None:
    pids = {path.stem.rsplit("_", 1)[-1] for path in scraped.multiproc_dir.glob("histogram_*.db")}
    assert len(pids) >= 2, "both workers write their values"
    text = httpx.get(scraped.metrics_url, timeout=10).text
    samples = _samples(text)
    assert samples['selfcheck_requests_total{route="/v1/check",status_class="2xx"}'] == 10, text
    assert samples['selfcheck_requests_total{route="/v1/check",status_class="4xx"}'] == 5
    assert samples['selfcheck_requests_total{route="other",status_class="4xx"}'] == 1
    assert samples['selfcheck_refusals_total{admission="any",bucket="junk"}'] == 2
    assert samples['selfcheck_checks_hashed_total{admission="unproven"}'] == 10
    assert samples["selfcheck_hash_duration_seconds_count"] == 10
    assert samples["selfcheck_hash_queue_wait_seconds_count"] == 10
    assert samples["selfcheck_floor_held_total"] == 15
    assert samples['selfcheck_ceiling_capacity_per_second{admission="proven"}'] > 0
    infos = [k for k, v in samples.items() if k.startswith("selfcheck_index_info") and v == 1]
    assert len(infos) == 2  # one per worker: each says which set it serves
    for info in infos:
        assert 'incident="test-incident"' in info
        assert 'format_version="2"' in info
    assert all(name.startswith(("selfcheck_", "python_", "process_")) for name in samples)


def test_the_exposition_holds_no_identity_outcome_or_address(scraped: Scraped) -> None:
    text = httpx.get(scraped.metrics_url, timeout=10).text
    for probe in scraped.probes:
        for value in submitted_values(probe):
            assert value not in text
    for forbidden in ("affected", "not_found", "127.0.0.1", "outcome"):
        assert forbidden not in text


def test_the_metrics_are_not_on_the_public_port(scraped: Scraped) -> None:
    assert httpx.get(scraped.server.url + "/metrics", timeout=10).status_code == 404


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_a_real_prometheus_scrapes_the_expected_series(scraped: Scraped, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not installed: run scripts/ensure-system-packages.sh"
    target = scraped.metrics_url.removeprefix("http://").removesuffix("/metrics")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: selfcheck, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port)
        expr = 'selfcheck_requests_total{route="/v1/check"}'
        deadline = time.monotonic() + 30
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(result) < 2:
            time.sleep(0.5)
            result = _query(base, expr)
        by_class = {r["metric"]["status_class"]: float(r["value"][1]) for r in result}
        assert by_class == {"2xx": 10.0, "4xx": 5.0}
        (junk,) = _query(base, 'selfcheck_refusals_total{bucket="junk"}')
        assert float(junk["value"][1]) == 2
        assert _query(base, "selfcheck_index_info == 1")[0]["metric"]["incident"] == "test-incident"
        (up,) = _query(base, 'up{job="selfcheck"}')
        assert up["value"][1] == "1"
        names = httpx.get(f"{base}/api/v1/label/__name__/values", timeout=5).json()["data"]
        ours = {n for n in names if n.startswith("selfcheck_")}
        assert {"selfcheck_floor_overruns_total", "selfcheck_store_errors_total"} <= ours
        series = httpx.get(
            f"{base}/api/v1/series", params={"match[]": '{job="selfcheck"}'}, timeout=5
        ).text
        for probe in scraped.probes:
            for value in submitted_values(probe):
                assert value not in series
    finally:
        stop_process(process)


LOG_FIELDS = {"ts", "event", "route", "status", "duration_ms", "net"}


def test_one_json_line_per_request_without_personal_data(scraped: Scraped) -> None:
    log = scraped.server.log_text()
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    checks = [line for line in lines if line["route"] == CHECK]
    statuses = sorted(line["status"] for line in checks)
    assert statuses == [200] * (HITS + MISSES) + [422] * JUNK_LIMIT + [429] * 2
    others = [line for line in lines if line["route"] == "other"]  # invented paths, /metrics
    assert others
    assert {line["status"] for line in others} == {404}
    for line in lines:
        extra = {"refused_by"} if line["status"] == 429 else set()
        assert set(line) == LOG_FIELDS | extra, line
        assert line["event"] == "request"
        assert re.fullmatch(r"[0-9a-f]{16}", line["net"])
    assert {line["refused_by"] for line in checks if line["status"] == 429} == {"junk"}
    assert min(line["duration_ms"] for line in checks) >= 20  # the floor is inside
    assert len({line["net"] for line in lines}) == 1  # one client network, two workers
    for probe in scraped.probes:
        for value in submitted_values(probe):
            assert value not in log, value
    for forbidden in ("affected", "not_found", "Test incident"):
        assert forbidden not in log
    # The server's own start-up line names its bind address; no request line has one.
    assert not [line for line in lines if "127.0.0.1" in orjson.dumps(line).decode()]


@pytest.fixture(scope="module")
def two(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TwoIncidents:
    return build_two_incidents(dataset, tmp_path_factory.mktemp("reload-incidents"))


class Stream:
    """Checks without pause from ``clients`` threads; records (time, probe, status, status)."""

    def __init__(self, url: str, probes: list[Probe], clients: int = 4) -> None:
        self.url, self.probes = url, probes
        self.records: list[tuple[float, Probe, int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            n = offset
            while not self._stop.is_set():
                probe = self.probes[n % len(self.probes)]
                n += 1
                response = http.post(CHECK, json=body_of(probe))
                answer = orjson.loads(response.content)
                self.records.append(
                    (time.monotonic(), probe, response.status_code, answer.get("status", ""))
                )

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _workers_serving(metrics_url: str, index_id: str) -> int:
    text = httpx.get(metrics_url, timeout=5).text
    pattern = re.compile(rf'^selfcheck_index_info\{{[^}}]*index_id="{index_id}"[^}}]*\}} 1\.0$')
    return sum(1 for line in text.splitlines() if pattern.match(line))


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


async def _statuses(url: str, probes: list[Probe]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return [
            orjson.loads((await http.post(CHECK, json=body_of(p))).content)["status"]
            for p in probes
        ]


def test_sighup_reloads_every_worker_under_load_without_a_wrong_answer(
    scraped: Scraped, two: TwoIncidents
) -> None:
    """Last in this module: it replaces the served index. While four clients check
    identities of A only and of B only without pause, B is moved into place and the
    launcher gets SIGHUP: every answer must be a 200 right for A or for B, and once both
    workers report B's id (the info metric, one row per worker) every answer B's. A
    corrupt file then: one refusal line per worker, B still served."""
    served, server, metrics_url = scraped.served, scraped.server, scraped.metrics_url
    in_a, in_b = two.first_only[:3], two.second_only[:3]
    id_a, id_b = index_id(two.first), index_id(two.second)
    _wait(lambda: _workers_serving(metrics_url, id_a) == 2)
    with Stream(server.url, in_a + in_b) as stream:
        time.sleep(1.0)
        replace_index(two.second, served)
        server.process.send_signal(signal.SIGHUP)
        _wait(lambda: _workers_serving(metrics_url, id_b) == 2)
        both_reloaded = time.monotonic()
        time.sleep(1.0)
    # A corrupt file: refused by each worker in one line, B still served.
    served.write_bytes(two.second.read_bytes()[:-40] + b"\0" * 40)
    server.process.send_signal(signal.SIGHUP)
    _wait(lambda: server.log_text().count("index reload refused") == 2)
    after = asyncio.run(_statuses(server.url, in_b))
    log = server.log_text()
    records = stream.records
    assert len(records) > 40
    assert {status for _, _, status, _ in records} == {200}
    for at, probe, _, outcome in records:
        right_for_a = outcome == ("affected" if probe in in_a else "not_found")
        right_for_b = outcome == ("affected" if probe in in_b else "not_found")
        assert right_for_a or right_for_b
        if at > both_reloaded + 0.1:  # answers sent after both workers swapped
            assert right_for_b, (probe.expected, outcome)
    assert any(at > both_reloaded and probe in in_b for at, probe, _, _ in records)
    assert after == ["affected"] * len(in_b)
    refusals = [line for line in log.splitlines() if "index reload refused" in line]
    assert len(refusals) == 2
    assert all(f"still serving {id_b}" in line and "checksum" in line for line in refusals)

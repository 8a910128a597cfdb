"""Index hot reload under a steady stream of checks: no failed or wrong answer, new answers.

A real `selfcheck serve` with two workers serves incident A from one path; while four
clients check identities of A only and of B only without pause, B is moved into place
and the launcher gets SIGHUP. Every answer must be a 200 that is right for A or for B,
and once both workers report B's id (the info metric, one row per worker) every answer
must be B's. A corrupt file then: one refusal line per worker, B still served. In
process: a file change alone (watchfiles) reloads too.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.index_set import reader_id
from lookup_index import IndexReader
from lookup_index.generator import Probe
from lookup_index.pepper import generate_pepper_file
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of, dataset_env
from tests.support.dataset import Dataset
from tests.support.incidents import TwoIncidents, build_two_incidents
from tests.support.servers import RedisServer, api_server, free_port, wait_for_port


@pytest.fixture(scope="module")
def two(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TwoIncidents:
    return build_two_incidents(dataset, tmp_path_factory.mktemp("reload-incidents"))


def _id(path: Path) -> str:
    with IndexReader.open(path) as reader:
        return reader_id(reader)


def _replace(source: Path, target: Path) -> None:
    """As an operator should: copy beside it, then rename over it (atomic)."""
    temporary = target.with_name(target.name + ".new")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


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


@pytest.mark.slow
def test_sighup_reloads_every_worker_under_load_without_a_wrong_answer(
    dataset: Dataset, two: TwoIncidents, redis: RedisServer, tmp_path: Path
) -> None:
    served = tmp_path / "served.bin"
    shutil.copyfile(two.first, served)
    limit_key = tmp_path / "limits.key"
    generate_pepper_file(limit_key)
    metrics_port = free_port()
    env = dataset_env(
        dataset,
        SELFCHECK_INDEX_PATH=str(served),
        SELFCHECK_WORKERS="2",
        SELFCHECK_RATE_LIMIT_STORAGE=redis.url,
        SELFCHECK_RATE_LIMIT_KEY_FILE=str(limit_key),
        SELFCHECK_INDEX_WATCH="false",  # SIGHUP alone here
        SELFCHECK_METRICS_PORT=str(metrics_port),
        SELFCHECK_RESPONSE_FLOOR_MS="10",
    )
    in_a, in_b = two.first_only[:3], two.second_only[:3]
    id_a, id_b = _id(two.first), _id(two.second)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    with api_server(env, tmp_path / "api.log") as server:
        wait_for_port(metrics_port)
        _wait(lambda: _workers_serving(metrics_url, id_a) == 2)
        with Stream(server.url, in_a + in_b) as stream:
            time.sleep(1.0)
            _replace(two.second, served)
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


async def _statuses(url: str, probes: list[Probe]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return [
            orjson.loads((await http.post(CHECK, json=body_of(p))).content)["status"]
            for p in probes
        ]


@pytest.fixture
def watched(tmp_path: Path, two: TwoIncidents) -> Path:
    served = tmp_path / "watched" / "served.bin"
    served.parent.mkdir()
    shutil.copyfile(two.first, served)
    return served


async def test_a_changed_index_file_is_reloaded_and_answers(
    app_factory: Callable[..., Any], two: TwoIncidents, watched: Path
) -> None:
    app, http = await app_factory(index_path=watched, index_watch=True, **GENEROUS_LIMITS)
    probe = two.second_only[0]
    before = orjson.loads((await http.post(CHECK, json=body_of(probe))).content)
    assert before["status"] == "not_found"
    readyz = (await http.get("/readyz")).json()
    assert readyz["index_id"] == _id(two.first)
    _replace(two.second, watched)
    deadline = time.monotonic() + 20
    while (await http.get("/readyz")).json()["index_id"] != _id(two.second):
        assert time.monotonic() < deadline, "the watcher did not reload"
        await asyncio.sleep(0.2)
    after = orjson.loads((await http.post(CHECK, json=body_of(probe))).content)
    assert after["status"] == "affected"
    metrics = app.state.metrics.exposition().decode()
    assert 'selfcheck_index_reloads_total{result="loaded"} 1.0' in metrics

"""The request log: one JSON line per request on stdout, its shape, and no personal data.

A real `selfcheck serve` answers hits, misses, malformed bodies, a wrong content type,
an invented path and refusals; every line must have exactly the documented fields, and
nothing submitted, no outcome and no address. In process, on a real Redis: two apps
(two workers) log the same network id for one network, another network gets another,
and the day's key expires from the store within 48 hours.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis as redis_client

from app.network_id import KEY_TTL_S, STORE_KEY, today
from lookup_index.pepper import generate_pepper_file
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of, dataset_env, submitted_values
from tests.support.dataset import Dataset
from tests.support.servers import RedisServer, api_server, free_port

FIELDS = {"ts", "event", "route", "status", "duration_ms", "net"}
JUNK_LIMIT = 4


async def _run_of_requests(url: str, dataset: Dataset) -> tuple[list[Any], list[int]]:
    hits, misses = dataset.by_expected("affected")[:4], dataset.by_expected("not_found")[:4]
    invalid = dataset.by_expected("invalid")[:3]
    statuses = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for probe in hits + misses:
            statuses.append((await http.post(CHECK, json=body_of(probe))).status_code)
        for probe in invalid:
            statuses.append((await http.post(CHECK, json=body_of(probe))).status_code)
        form = {"content-type": "application/x-www-form-urlencoded"}
        statuses.append((await http.post(CHECK, content=b"nir=1", headers=form)).status_code)
        statuses.append((await http.post(CHECK, json=body_of(invalid[0]))).status_code)
        statuses.append((await http.get(f"/{hits[0].last_name}")).status_code)
    return hits + misses + invalid, statuses


@pytest.mark.slow
def test_one_json_line_per_request_without_personal_data(dataset: Dataset, tmp_path: Path) -> None:
    env = dataset_env(
        dataset,
        SELFCHECK_LIMITS_JUNK=f"{JUNK_LIMIT}/minute",
        SELFCHECK_RESPONSE_FLOOR_MS="5",
        SELFCHECK_INDEX_WATCH="false",
        SELFCHECK_METRICS_PORT=str(free_port()),
    )
    env.pop("SELFCHECK_LOG_FORMAT", None)  # json is the default
    with api_server(env, tmp_path / "api.log") as server:
        probes, statuses = asyncio.run(_run_of_requests(server.url, dataset))
        log = server.log_text()
    assert statuses == [200] * 8 + [422] * 3 + [415, 429, 404]
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    checks = [line for line in lines if line["route"] == CHECK]
    assert [line["status"] for line in checks] == statuses[:-1]
    (other,) = [line for line in lines if line["route"] == "other"]
    assert other["status"] == 404
    for line in lines:
        extra = {"refused_by"} if line["status"] == 429 else set()
        assert set(line) == FIELDS | extra, line
        assert line["event"] == "request"
        assert re.fullmatch(r"[0-9a-f]{16}", line["net"])
        assert line["duration_ms"] >= 0
    assert checks[-1]["refused_by"] == "junk"
    assert min(line["duration_ms"] for line in checks) >= 5  # the floor is inside
    assert len({line["net"] for line in lines}) == 1  # one client network
    for probe in probes:
        for value in submitted_values(probe):
            assert value not in log, value
    for forbidden in ("affected", "not_found", "Test incident"):
        assert forbidden not in log
    # The server's own start-up line names its bind address; no request line has one.
    assert not [line for line in lines if "127.0.0.1" in orjson.dumps(line).decode()]


async def test_workers_share_the_day_s_network_id_which_expires(
    app_factory: Callable[..., Any],
    redis: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    limit_key = tmp_path / "limits.key"
    generate_pepper_file(limit_key)
    common = {
        **GENEROUS_LIMITS,
        "rate_limit_storage": redis.url,
        "rate_limit_key_file": limit_key,
    }
    capsys.readouterr()
    nets = []
    for client_ip in ("198.51.100.7", "198.51.100.7", "203.0.113.9"):
        _, http = await app_factory(client_ip=client_ip, **common)
        assert (await http.get("/healthz")).status_code == 200
        (line,) = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
        nets.append(line["net"])
    assert nets[0] == nets[1] != nets[2]
    store = redis_client.Redis.from_url(redis.url)
    ttl = store.ttl(STORE_KEY.format(day=today()))
    assert 0 < ttl <= KEY_TTL_S


async def test_text_format_for_make_run(
    app_factory: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    _, http = await app_factory(log_format="text")
    await http.get("/healthz")
    out = capsys.readouterr().out.strip()
    assert out.startswith("ts=")
    assert "route='/healthz' status=200" in out

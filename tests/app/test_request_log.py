"""The request log's network id and text format (its shape and the absence of personal data
on a real two-worker server: tests/app/test_metrics_and_logs_process.py).

In process, on a real Redis: two apps (two workers) log the same network id for one
network, another network gets another, and the day's key expires within 48 hours.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_client

from app.network_id import KEY_TTL_S, STORE_KEY, today
from lookup_index.pepper import generate_pepper_file
from tests.app.helpers import GENEROUS_LIMITS
from tests.support.servers import RedisServer

FIELDS = {"ts", "event", "route", "status", "duration_ms", "net"}
JUNK_LIMIT = 4


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

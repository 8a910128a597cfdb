"""No log line holds a submitted NIR, name, birth date, result or the client's address.

In process (caplog, every logger at DEBUG) and in a real `selfcheck serve`
process whose hasher is broken on purpose (the 500 path on the wire). The
real process's log for hits, misses and errors is checked in test_floor_process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from lookup_index import KeyedHasher
from tests.app.helpers import (
    CHECK,
    GENEROUS_LIMITS,
    body_of,
    dataset_env,
    python_server,
    submitted_values,
)
from tests.support.dataset import Dataset

CLIENT_IP = "203.0.113.77"
#: The test client's own loggers print URLs; they are not the server's log.
CLIENT_LOGGERS = ("httpx", "httpcore", "hypothesis", "asyncio")


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            continue
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


def assert_nothing_of(log: str, probes: list[Any], client_ip: str) -> None:
    assert client_ip not in log
    for probe in probes:
        for value in submitted_values(probe):
            assert value not in log, value
    for outcome in ("affected", "not_found"):
        assert outcome not in log


async def test_hits_misses_and_errors_log_nothing_submitted(
    app_factory: Callable[..., Any],
    dataset: Dataset,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, http = await app_factory(client_ip=CLIENT_IP, response_floor_ms=1, **GENEROUS_LIMITS)
    hits, misses = dataset.by_expected("affected")[:5], dataset.by_expected("not_found")[:5]
    invalid = dataset.by_expected("invalid")[:5]
    for probe in hits + misses + invalid:
        await http.post(CHECK, json=body_of(probe))
        await http.post(CHECK, json={**body_of(probe), "extra": probe.last_name})
        await http.post(CHECK, content=orjson.dumps(body_of(probe)) + b"}")
        await http.post(
            CHECK,
            content=orjson.dumps(body_of(probe)),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        await http.post(
            CHECK,
            content=orjson.dumps({**body_of(probe), "last_name": probe.last_name * 100}),
            headers={"content-type": "application/json"},
        )
        await http.get(CHECK, params=body_of(probe))
        await http.get(f"/{probe.last_name}", params=body_of(probe))
    monkeypatch.setattr(KeyedHasher, "digest", lambda self, c: 1 / 0)
    for probe in hits + misses:
        assert (await http.post(CHECK, json=body_of(probe))).status_code == 500
    log = server_log(caplog)
    assert "ZeroDivisionError" in log  # the capture really holds the server's lines
    assert_nothing_of(log, hits + misses + invalid, CLIENT_IP)


async def test_refused_requests_log_no_address(
    app_factory: Callable[..., Any], dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, http = await app_factory(client_ip=CLIENT_IP, limits_per_network="2/minute")
    probes = dataset.by_expected("affected")[:4]
    statuses = [(await http.post(CHECK, json=body_of(p))).status_code for p in probes]
    assert statuses[-1] == 429
    assert_nothing_of(server_log(caplog), probes, CLIENT_IP)


PATCHED_SERVE = """
import sys
from lookup_index import KeyedHasher

def quoting_failure(self, canonical):
    raise RuntimeError("cannot hash " + canonical.decode())

KeyedHasher.digest = quoting_failure
from app.cli import main
sys.exit(main(["serve"]))
"""


@pytest.mark.slow
def test_the_500_path_of_a_real_server_logs_nothing_submitted(
    dataset: Dataset, tmp_path: Any
) -> None:
    log = tmp_path / "server.log"
    env = dataset_env(dataset, SELFCHECK_RESPONSE_FLOOR_MS="20", SELFCHECK_LOG_LEVEL="debug")
    probes = dataset.by_expected("affected")[:3] + dataset.by_expected("not_found")[:3]
    client_ip = "127.0.0.78"
    with python_server(PATCHED_SERVE, env, log) as server:
        transport = httpx.HTTPTransport(local_address=client_ip)
        with httpx.Client(transport=transport, base_url=server.url, timeout=10) as http:
            for probe in probes:
                response = http.post(CHECK, json=body_of(probe))
                assert (response.status_code, len(response.content)) == (500, 8192)
                assert orjson.loads(response.content)["error"] == "internal_error"
    text = server.log_text()
    assert text.count("unhandled RuntimeError") == len(probes)
    assert "cannot hash v1|" not in text
    assert_nothing_of(text, probes, client_ip)

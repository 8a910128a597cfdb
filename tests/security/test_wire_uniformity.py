"""Every answer of /v1/check is the same bytes on the wire, apart from the status itself.

Compared as raw bytes from a socket, as a TLS observer would count them: the
head (status line and headers) and the body, for a hit, a miss and every
refusal. Before, a 200, a 422 and a 429 were 8620, 8638 and 8652 bytes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.app.helpers import GENEROUS_ENV
from tests.security.conftest import serve_env
from tests.security.wire import WireAnswer, check_request, read_answer, request
from tests.support.dataset import Dataset
from tests.support.servers import ApiServer, api_server, redis_server

pytestmark = [pytest.mark.security, pytest.mark.slow]


def _from(port: int, raw: bytes, source: str) -> WireAnswer:
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(raw)
        return read_answer(s)


@pytest.fixture(scope="module")
def limited(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = {**GENEROUS_ENV, "SELFCHECK_LIMITS_PER_NETWORK": "2/minute;100/hour;100/day"}
    log = tmp_path_factory.mktemp("wire") / "server.log"
    with api_server(serve_env(dataset, SELFCHECK_RESPONSE_FLOOR_MS="0", **env), log) as server:
        yield server


@pytest.fixture(scope="module")
def store_down(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """Its Redis has stopped since start-up: every check fails closed with the 503."""
    directory = tmp_path_factory.mktemp("wire-503")
    with redis_server(directory / "redis") as redis:
        env = {
            **GENEROUS_ENV,
            "SELFCHECK_RATE_LIMIT_STORAGE": redis.url,
            "SELFCHECK_RATE_LIMIT_TIMEOUT_MS": "100",
            "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        }
        with api_server(serve_env(dataset, **env), directory / "server.log") as server:
            redis.stop()
            yield server


def answers(limited: ApiServer, store_down: ApiServer, dataset: Dataset) -> dict[str, WireAnswer]:
    hit, miss = dataset.by_expected("affected")[0], dataset.by_expected("not_found")[0]
    source = "127.0.0.31"
    port = limited.port
    out = {
        "hit": _from(port, check_request(hit), source),
        "miss": _from(port, check_request(miss), source),
        "422": _from(port, request("POST", "/v1/check", b'{"nir": 1}'), source),
        "415": _from(port, request("POST", "/v1/check", b"{}", content_type="text/plain"), source),
        "413": _from(port, request("POST", "/v1/check", b"{" + b" " * 4000 + b"}"), source),
        "405": _from(port, request("GET", "/v1/check"), source),
    }
    # The third check (refused bodies count in their own junk bucket, not this one).
    out["429"] = _from(port, check_request(miss), source)
    out["503"] = _from(store_down.port, check_request(miss), "127.0.0.32")
    return out


def test_every_answer_has_the_same_header_set_and_length_on_the_wire(
    limited: ApiServer, store_down: ApiServer, dataset: Dataset
) -> None:
    got = answers(limited, store_down, dataset)
    statuses = {name: answer.status for name, answer in got.items()}
    assert statuses == {
        "hit": 200, "miss": 200, "422": 422, "415": 415, "413": 413, "405": 405,
        "429": 429, "503": 503,
    }  # fmt: skip
    reference = got["hit"]
    for name, answer in got.items():
        assert sorted(answer.header_names()) == sorted(reference.header_names()), name
        assert len(answer.head) == len(reference.head), (name, answer.head, reference.head)
        assert len(answer.body) == len(reference.body), name
    assert got["429"].header(b"retry-after") == b"60"
    assert len({answer.head for answer in got.values()}) > 1  # not the same answer every time

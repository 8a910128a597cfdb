"""Every malformed query gets one constant body per status, padded like an answer, no echo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from app.errors import InvalidRequest, MethodNotAllowed, NotFound, UnsupportedMediaType
from app.settings import Settings
from lookup_index.generator import Probe
from tests.app.helpers import CHECK, ERROR_KEYS, body_of, envelope, without_padding
from tests.support.dataset import Dataset
from tests.support.rate_limits import LIFTED, check_body, in_process, valid_probes
from tests.support.servers import free_port

JSON = {"content-type": "application/json"}


def _invalid_probe(dataset: Dataset, reason: str) -> Probe:
    return next(p for p in dataset.by_expected("invalid") if p.reason == reason)


def malformed_bodies(dataset: Dataset) -> dict[str, bytes]:
    """Bodies that must all get the one 422; each carries a real-looking identity."""
    probe = dataset.by_expected("affected")[0]
    good = body_of(probe)

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    cases = {
        "malformed json": dumps(good)[:-7],
        "not an object": dumps([probe.nir, probe.birth_date, probe.last_name]),
        "json string": dumps(probe.nir),
        "nir as a number": dumps({**good, "nir": int("".join(filter(str.isdigit, probe.nir)))}),
        "date as a number": dumps({**good, "birth_date": 19700101}),
        "name as a list": dumps({**good, "last_name": [probe.last_name]}),
        "lang as a number": dumps({**good, "lang": 1}),
        "unknown lang": dumps({**good, "lang": "de"}),
        "extra field": dumps({**good, "first_name": probe.last_name}),
        "missing nir": dumps({k: v for k, v in good.items() if k != "nir"}),
        "missing birth date": dumps({k: v for k, v in good.items() if k != "birth_date"}),
        "missing name": dumps({k: v for k, v in good.items() if k != "last_name"}),
        "null name": dumps({**good, "last_name": None}),
        "over-long nir": dumps({**good, "nir": probe.nir + " " * 30 + probe.nir}),
        "over-long name": dumps({**good, "last_name": probe.last_name * 60}),
        "over-long date": dumps({**good, "birth_date": probe.birth_date + "T00:00:00"}),
        "empty name": dumps({**good, "last_name": ""}),
        "name without letters": dumps({**good, "last_name": " - ' "}),
        "bad date": dumps({**good, "birth_date": probe.birth_date[:5] + "02-31"}),
        "french date": dumps(
            {**good, "birth_date": "/".join(reversed(probe.birth_date.split("-")))}
        ),
        "future date": dumps({**good, "birth_date": "2999-01-01"}),
        "empty object": b"{}",
        "empty body": b"",
        "not utf-8": b'{"nir": "\xff\xfe", "birth_date": "' + probe.birth_date.encode() + b'"}',
        "deep nesting": b"[" * 900 + b"]" * 900,
    }
    for reason in ("nir_key", "nir_range", "nir_format"):
        cases[f"invalid nir ({reason})"] = dumps(body_of(_invalid_probe(dataset, reason)))
    return cases


def values_in(body: bytes) -> list[str]:
    """Every string the client sent that is long enough to be recognised in an answer."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else [data]
    return [str(v) for v in values if v is not None and len(str(v)) >= 4]


async def test_every_malformed_query_gets_the_one_constant_422(
    generous: httpx.AsyncClient, dataset: Dataset
) -> None:
    reference = await generous.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))
    assert reference.status_code == 200
    _, headers, length = envelope(reference)
    bodies = []
    for name, sent in malformed_bodies(dataset).items():
        response = await generous.post(CHECK, content=sent, headers=JSON)
        assert envelope(response) == (422, headers, length), name
        data = without_padding(response)
        assert data == {"error": InvalidRequest.code, "message": InvalidRequest.message}, name
        bodies.append(response.content)
        for value in values_in(sent):
            assert value.encode() not in response.content, name
            assert value.upper().encode() not in response.content, name
    assert set(orjson.loads(bodies[0])) == ERROR_KEYS
    # The padding is fresh: two errors never share their bytes, only their length.
    assert len(set(bodies)) == len(bodies)


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("text/plain", lambda body: orjson.dumps(body)),
        ("application/x-www-form-urlencoded", lambda body: str(httpx.QueryParams(body)).encode()),
        ("multipart/form-data; boundary=x", lambda body: b"--x\r\n\r\n" + orjson.dumps(body)),
        ("application/jsonp", lambda body: orjson.dumps(body)),
        ("text/json", lambda body: orjson.dumps(body)),
        (None, lambda body: orjson.dumps(body)),
    ],
)
async def test_a_wrong_content_type_is_415_and_not_processed(
    generous: httpx.AsyncClient,
    dataset: Dataset,
    content_type: str | None,
    encode: Callable[[dict[str, str]], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lookup_index import KeyedHasher

    def never(self: KeyedHasher, canonical: bytes) -> bytes:
        raise AssertionError("a 415 request reached the hasher")

    reference = await generous.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))
    monkeypatch.setattr(KeyedHasher, "digest", never)
    probe = dataset.by_expected("affected")[0]
    headers = {"content-type": content_type} if content_type else {}
    request = generous.build_request("POST", CHECK, content=encode(body_of(probe)), headers=headers)
    assert request.headers.get("content-type") == content_type
    response = await generous.send(request)
    assert envelope(response) == (415, *envelope(reference)[1:])
    assert without_padding(response) == {
        "error": UnsupportedMediaType.code,
        "message": UnsupportedMediaType.message,
    }
    assert probe.last_name.encode() not in response.content


async def test_json_with_a_charset_parameter_is_accepted(
    generous: httpx.AsyncClient, dataset: Dataset
) -> None:
    probe = dataset.by_expected("affected")[0]
    response = await generous.post(
        CHECK,
        content=orjson.dumps(body_of(probe)),
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert response.status_code == 200
    assert without_padding(response)["status"] == "affected"


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "/nowhere", NotFound),
        ("POST", "/v1/checks", NotFound),
        ("GET", "/v2/check?nir=1", NotFound),
        ("GET", CHECK, MethodNotAllowed),
        ("PUT", CHECK, MethodNotAllowed),
        ("DELETE", CHECK, MethodNotAllowed),
        ("POST", "/healthz", MethodNotAllowed),
    ],
)
async def test_404_and_405_are_constant(
    generous: httpx.AsyncClient, method: str, path: str, error: Any
) -> None:
    first, second = [await generous.request(method, path) for _ in range(2)]
    assert first.status_code == second.status_code == error.status_code
    assert (
        without_padding(first)
        == without_padding(second)
        == {
            "error": error.code,
            "message": error.message,
        }
    )
    assert len(first.content) == len(second.content) == 8192
    assert "allow" not in first.headers  # nothing about the routes beyond the status


async def test_a_503_tells_the_metrics_what_failed(
    make_settings: Callable[..., Settings], dataset: Dataset
) -> None:
    """The constant 503 hides the cause from the client; selfcheck_unavailable_total keeps it
    for the operator ("store" here; "overload" is only the fallback when none was given)."""
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: refused at once
    settings = make_settings(**LIFTED, rate_limit_storage=closed, rate_limit_timeout_ms=200)
    probe = valid_probes(dataset.probes)[0]
    async with in_process(settings) as app, app.client("127.0.52.1") as http:
        answer = await http.post(CHECK, json=check_body(probe))
        registry = app.state.metrics.registry
        by_cause = {
            cause: registry.get_sample_value("selfcheck_unavailable_total", {"cause": cause})
            for cause in ("store", "overload")
        }
    assert answer.status_code == 503
    assert by_cause == {"store": 1.0, "overload": None}

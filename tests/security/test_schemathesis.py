"""Schemathesis against a real `selfcheck serve`: fuzzed checks, positive and negative.

Generated from the server's own OpenAPI document, bounded in examples. Whatever
arrives: no server error, an answer that conforms to the documented schema,
every body the fixed size, one header set, and nothing of the input echoed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from app.errors import PublicError
from tests.app.helpers import GENEROUS_ENV
from tests.security.conftest import serve_env
from tests.support.dataset import Dataset
from tests.support.servers import ApiServer, api_server

pytestmark = [pytest.mark.security, pytest.mark.slow]

RESPONSE_SIZE = 8192
EXAMPLES_PER_MODE = 50


@pytest.fixture(scope="module")
def documented(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = serve_env(
        dataset, SELFCHECK_DOCS_ENABLED="true", SELFCHECK_RESPONSE_FLOOR_MS="0", **GENEROUS_ENV
    )
    with api_server(env, tmp_path_factory.mktemp("schemathesis") / "server.log") as server:
        yield server


def _constant_errors() -> dict[int, dict[str, str]]:
    """Status -> the one error body (less padding) every refusal with that status carries."""
    found: dict[int, dict[str, str]] = {}
    todo: list[type[PublicError]] = [PublicError]
    while todo:
        error = todo.pop()
        found.setdefault(error.status_code, {"error": error.code, "message": error.message})
        todo.extend(error.__subclasses__())
    return found


CONSTANT_ERRORS = _constant_errors()


def _strings(value: Any) -> Iterator[str]:
    """Every string value a generated body holds (keys are the schema's own field names)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_checks_get_only_uniform_constant_answers(
    documented: ApiServer, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{documented.url}/openapi.json")
    operation = schema["/v1/check"]["POST"]
    session = requests.Session()
    reference = requests.post(f"{documented.url}/v1/check", json={}, timeout=10)
    header_names = sorted(k.lower() for k in reference.headers if k.lower() != "date")
    statuses: set[int] = set()

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(base_url=documented.url, session=session, timeout=10)
        statuses.add(response.status_code)
        assert response.status_code < 500, response.status_code
        # A NIR's key and ranges are not JSON Schema: a schema-valid body may be refused;
        # and schemathesis does not count 413 as a rejection. Both are asserted below.
        case.validate_response(
            response, excluded_checks=[positive_data_acceptance, negative_data_rejection]
        )
        allowed = {200, 413, 422} if mode is GenerationMode.POSITIVE else {413, 415, 422}
        assert response.status_code in allowed, response.status_code
        assert len(response.content) == RESPONSE_SIZE
        assert sorted(k.lower() for k in response.headers if k.lower() != "date") == header_names
        payload = response.json()
        payload.pop("padding")  # random characters: any short string turns up there
        if "error" in payload:
            # A refusal is exactly its status's constant body: nothing else can be echoed
            # (a fuzzed string may well be a piece of the constant text itself).
            assert payload == CONSTANT_ERRORS[response.status_code], "input echoed"
            return
        text = json.dumps(payload, ensure_ascii=False)
        for value in _strings(case.body):
            if len(value.strip()) >= 6:
                assert value not in text, "input echoed"

    check()
    # The run reached validation, not only the body cap.
    assert 422 in statuses, statuses

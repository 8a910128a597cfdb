"""The security stage: attacks tried on real `selfcheck serve` processes on loopback.

Every module here drives a real server through sockets, as an attacker would;
`make test` runs them with the rest; `make security` runs only them (marker ``security``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.helpers import GENEROUS_ENV
from tests.support.dataset import Dataset
from tests.support.servers import ApiServer, api_server

#: The production floor: what a normal client must still get under attack (+100 ms).
FLOOR_MS = 250
#: Short deadlines so the attacks resolve in a test's time.
KEEP_ALIVE_S = 1
BODY_TIMEOUT_S = 1


def serve_env(dataset: Dataset, **extra: str) -> dict[str, str]:
    return serve_env_for(dataset.index, dataset.key, **extra)


def serve_env_for(index: Path, key: Path, **extra: str) -> dict[str, str]:
    return {
        "SELFCHECK_INDEX_PATH": str(index),
        "SELFCHECK_KEY_FILE": str(key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        "SELFCHECK_RESPONSE_FLOOR_MS": str(FLOOR_MS),
        "SELFCHECK_HASH_CONCURRENCY": "1",
        "SELFCHECK_KEEP_ALIVE_S": str(KEEP_ALIVE_S),
        "SELFCHECK_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        **extra,
    }


@pytest.fixture(scope="package")
def edge_server(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """`selfcheck serve` with the production floor and limits out of the way."""
    log = tmp_path_factory.mktemp("edge") / "server.log"
    with api_server(serve_env(dataset, **GENEROUS_ENV), log) as server:
        yield server

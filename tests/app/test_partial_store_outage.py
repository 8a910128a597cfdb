"""A store that fails only for some buckets: each failing call means the uniform 503.

In a Redis Cluster the node holding the network and global keys can fail while the one
holding an identity's keys answers. If the limiter swallowed the errors of those calls,
the identity buckets (which still answer) would hide it and the network and global limits
would silently fail open. Here an in-memory store fails for the named buckets only
(docs/MUTATION.md, mutant "store errors swallowed for network and global buckets").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from limits.errors import StorageError
from limits.storage import MemoryStorage

from app.settings import Settings
from lookup_index.pepper import load_pepper
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import LIFTED, check_body, in_process, valid_probes

#: Every MemoryStorage method a strategy calls with a storage key.
KEYED_METHODS = (
    "incr",
    "get",
    "get_expiry",
    "clear",
    "acquire_entry",
    "get_moving_window",
    "acquire_sliding_window_entry",
    "get_sliding_window",
    "clear_sliding_window",
)

FAILING = {
    "network": {"net", "v4-24", "v6-48", "v6-32", "addr"},
    "ceiling": {"ceiling", "ceiling-p"},
}


def fail_for(monkeypatch: pytest.MonkeyPatch, buckets: set[str]) -> list[str]:
    """Make the memory store raise for keys of ``buckets``; returns the refused keys' buckets."""
    refused: list[str] = []

    def wrap(name: str) -> None:
        original = getattr(MemoryStorage, name)

        def failing(self: MemoryStorage, key: str, *args: Any, **kwargs: Any) -> Any:
            # keys look like LIMITER/v1/<bucket>/<hmac>/... (the sliding counter's in {...})
            bucket = key.strip("{}").split("/")[2] if key.count("/") >= 3 else ""
            if bucket in buckets:
                refused.append(bucket)
                raise StorageError(ConnectionError("node down"))
            return original(self, key, *args, **kwargs)

        monkeypatch.setattr(MemoryStorage, name, failing)

    for name in KEYED_METHODS:
        wrap(name)
    return refused


@pytest.mark.parametrize("admission", ["unproven", "proven"])
@pytest.mark.parametrize("failing", FAILING)
async def test_a_store_failing_only_for_network_or_global_calls_answers_503(
    make_settings: Callable[..., Settings],
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
    admission: str,
) -> None:
    refused = fail_for(monkeypatch, FAILING[failing])
    settings = make_settings(**LIFTED, admission_wait_ms=0)
    probes = valid_probes(dataset.probes)[:3]
    pepper = load_pepper(dataset.key)
    async with in_process(settings) as app:
        answers = []
        for i, probe in enumerate(probes):
            body = check_body(probe)
            if admission == "proven":
                body["altcha"] = presolved(pepper)
            address = f"2001:db8:70::{i + 1}" if i % 2 else f"127.0.70.{i + 1}"
            answers.append(await app.check(address, body))
    assert [a.status_code for a in answers] == [503] * len(probes)
    assert {a.json()["error"] for a in answers} == {"unavailable"}
    assert {len(a.content) for a in answers} == {settings.response_size}
    assert refused, "the failing buckets were never asked"
    assert set(refused) <= FAILING[failing]


def test_a_store_that_does_not_answer_is_not_ready(make_settings: Callable[..., Settings]) -> None:
    from app.rate_limit import RateLimits
    from tests.support.servers import free_port

    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limits = RateLimits(make_settings(rate_limit_storage=closed, rate_limit_timeout_ms=200))
    assert limits.storage_ready() is False
    assert RateLimits(make_settings()).storage_ready() is True

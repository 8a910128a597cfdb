"""Anything unexpected: the constant padded 500, logged by type and frames only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from app.errors import InternalError
from lookup_index import KeyedHasher
from tests.app.helpers import (
    CHECK,
    GENEROUS_LIMITS,
    body_of,
    envelope,
    submitted_values,
    without_padding,
)
from tests.support.dataset import Dataset


def quoting_failure(self: KeyedHasher, canonical: bytes) -> bytes:
    # The worst case: an exception whose message quotes the identity being hashed.
    raise RuntimeError(f"cannot hash {canonical.decode()}")


async def test_an_unexpected_error_is_the_constant_500_and_its_log_quotes_nothing(
    app_factory: Callable[..., Any],
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, http = await app_factory(response_floor_ms=20, **GENEROUS_LIMITS)
    reference = await http.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))
    monkeypatch.setattr(KeyedHasher, "digest", quoting_failure)
    caplog.set_level(logging.DEBUG)
    probes = dataset.by_expected("affected")[:2] + dataset.by_expected("not_found")[:2]
    bodies = set()
    for probe in probes:
        response = await http.post(CHECK, json=body_of(probe))
        assert envelope(response) == (500, *envelope(reference)[1:])
        assert without_padding(response) == {
            "error": InternalError.code,
            "message": InternalError.message,
        }
        assert b"Traceback" not in response.content
        assert b"cannot hash" not in response.content
        bodies.add(response.content)
    assert len(bodies) == len(probes)  # fresh padding, constant content
    assert app.state.floor_stats.held == len(probes) + 1  # the 500 waits for the floor too
    logged = [r for r in caplog.records if r.name == "app.errors"]
    assert len(logged) == len(probes)
    assert all("RuntimeError" in r.getMessage() for r in logged)
    for probe in probes:
        for value in submitted_values(probe):
            assert value not in caplog.text
            assert value.upper() not in caplog.text
    assert "cannot hash v1|" not in caplog.text

"""The one contract test of slowapi (pinned in pyproject.toml) as ``app/admission/issuance.py``
adapts it: if a new slowapi changes any of this, this test says so before production does.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis
from starlette.requests import Request

from app.admission.issuance import SLOWAPI_CONFIG, IssuanceLimit, SlowapiEnvironment
from app.errors import RateLimited
from app.rate_limit import StorageUnavailable
from app.settings import Settings
from tests.support.servers import RedisServer


def request_from(address: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/v1/challenge",
            "headers": [],
            "client": (address, 40000),
            "query_string": b"",
        }
    )


def test_slowapi_counts_per_network_under_our_keys_and_fails_closed(
    make_settings: Callable[..., Settings],
    redis: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stray .env in the working directory that would lift the limit and swallow errors:
    # slowapi reads one when no file is named; ours is named, and empty.
    (tmp_path / ".env").write_text("RATELIMIT_ENABLED=false\nRATELIMIT_SWALLOW_ERRORS=true\n")
    monkeypatch.chdir(tmp_path)
    assert SLOWAPI_CONFIG.read_text() == ""
    keys: list[str] = []

    def network_key(value: str) -> str:
        keys.append(value)
        return hashlib.sha256(value.encode()).hexdigest()  # stands for the HMAC

    settings = make_settings(rate_limit_storage=redis.url, limits_challenge="2/minute")
    issuance = IssuanceLimit(settings, network_key)
    for _ in range(2):
        issuance.check(request_from("127.0.4.1"))
    with pytest.raises(RateLimited):  # slowapi's RateLimitExceeded, as our constant 429
        issuance.check(request_from("127.0.4.1"))
    issuance.check(request_from("127.0.4.2"))  # another address: its own budget
    # The key function saw the subscriber (IPv4 /32), and only its HMAC reached the store.
    assert keys[-1] == "4/32:127.0.4.2/32"
    stored = [k.decode() for k in Redis.from_url(redis.url).keys("*")]
    assert stored
    assert not [k for k in stored if "127.0.4" in k], stored

    # A failing store is our 503: no swallowed error, no in-memory fallback (fail closed).
    redis.pause()
    try:
        with pytest.raises(StorageUnavailable):
            IssuanceLimit(
                make_settings(rate_limit_storage=redis.url, rate_limit_timeout_ms=200),
                network_key,
            ).check(request_from("127.0.4.3"))
    finally:
        redis.resume()

    # RATELIMIT_* variables override slowapi's arguments: the service refuses to start.
    monkeypatch.setenv("RATELIMIT_SWALLOW_ERRORS", "true")
    with pytest.raises(SlowapiEnvironment, match="RATELIMIT_SWALLOW_ERRORS"):
        IssuanceLimit(settings, network_key)
    assert "RATELIMIT_SWALLOW_ERRORS" in os.environ

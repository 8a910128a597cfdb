"""The outbox: a Redis Stream the API only appends to (ACL: ``+xadd`` on that one key).

On its own store in production (compose runs a separate Redis with AOF), so an SMTP
outage that lets the stream grow never fills the rate-limit store. A failing write
raises :class:`OutboxUnavailable`: the uniform 503, whatever the query's outcome.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import RedisError

from app.errors import Unavailable

#: The stream field holding an entry (one short name: bytes per entry matter at scale).
ENTRY_FIELD = b"e"


class OutboxUnavailable(Unavailable):
    """The outbox store failed or did not answer in time: the uniform 503."""

    what_failed = "outbox store unavailable"


def redis_client(url: str, password: str | None, timeout: float) -> redis.Redis:
    """A client whose every wait is bounded, with no retry (a hung store costs one timeout)."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry_on_timeout": False,
    }
    if password is not None:
        options["password"] = password
    return redis.Redis.from_url(url, **options)


class Outbox:
    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client = client
        self.stream = stream

    def add(self, entry: bytes) -> None:
        """Append one entry (blocking: call from a worker thread)."""
        try:
            self.client.xadd(self.stream, {ENTRY_FIELD: entry})
        except RedisError as exc:
            raise OutboxUnavailable from exc

    def close(self) -> None:
        self.client.close()

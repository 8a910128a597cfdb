"""Real processes on loopback: redis-server and the API under uvicorn. Bounded in time.

The benchmarks' harness (loadtests/harness.py) holds them; the tests use the same code.
These are never skipped: `make test` installs redis-server (scripts/ensure-system-packages.sh).
"""

from __future__ import annotations

from loadtests.harness import (
    START_TIMEOUT,
    ApiServer,
    RedisServer,
    api_server,
    free_port,
    redis_server,
    served,
    stop_process,
    wait_for_port,
)

__all__ = [
    "START_TIMEOUT",
    "ApiServer",
    "RedisServer",
    "api_server",
    "free_port",
    "redis_server",
    "served",
    "stop_process",
    "wait_for_port",
]

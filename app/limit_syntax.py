"""The syntax of the rate-limit settings: limit strings and store URIs.

Its own module so that :mod:`app.settings` can refuse a bad value at construction
without importing the limiter (slowapi, redis-py): the settings are read by tools,
such as the load test's configuration, that never run a limiter.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many

#: The shared stores we know how to bound in time (``limits`` passes them to redis-py).
REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
SUPPORTED_SCHEMES = ("memory", *REDIS_SCHEMES)


def parse_limits(value: str) -> list[RateLimitItem]:
    """Parse a limit setting, refusing what slowapi would silently drop (a route left unlimited)."""
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items:
        raise ValueError(f"not a list of limits like '5/minute;20/hour': {value!r}")
    return items


def storage_scheme(uri: str) -> str:
    """The scheme of a storage URI, refusing stores whose waits we cannot bound."""
    scheme = urlsplit(uri).scheme
    if scheme not in SUPPORTED_SCHEMES:
        raise ValueError(
            f"rate-limit storage {scheme or uri!r} is not supported: "
            "use memory:// (one process) or redis://, rediss://, redis+unix://, "
            "redis+sentinel://, redis+cluster://"
        )
    return scheme

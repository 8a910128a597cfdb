"""Fixed-size JSON bodies: every answer of /v1/check has exactly the same length.

An observer who only sees TLS record sizes must not tell "affected" from
"not found" (or an error from an answer). Bodies are serialised with orjson
and padded with characters drawn from ``secrets``, so padding is neither
predictable nor compressible.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

#: Headers every /v1/check response carries, whatever its status.
UNIFORM_HEADERS = {"cache-control": "no-store", "content-type": "application/json"}


class PayloadDoesNotFit(ValueError):
    """A payload does not fit the configured response size (a configuration error, found at
    start-up; not to be confused with a request body over the cap, :class:`PayloadTooLarge`)."""


class PaddedSizeMismatch(RuntimeError):
    """A padded body came out another size than configured (a bug: padding must be ASCII).

    Raised, never asserted: ``python -O`` strips asserts, and a body of another size would
    tell answers apart. The catch-all middleware turns it into the constant 500.
    """


class PaddedJSON:
    """Serialises payloads to exactly ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def render(self, payload: Mapping[str, Any]) -> bytes:
        unpadded = orjson.dumps({**payload, "padding": ""})
        missing = self.size - len(unpadded)
        if missing < 0:
            raise PayloadDoesNotFit(f"payload needs {len(unpadded)} bytes, limit is {self.size}")
        # token_urlsafe(n) yields ceil(4n/3) URL-safe base64 characters (no JSON escaping):
        # draw only the bytes needed, as the OS random source is most of the cost of padding.
        padding = secrets.token_urlsafe((missing * 3 + 3) // 4)[:missing]
        body = orjson.dumps({**payload, "padding": padding})
        if len(body) != self.size:  # ASCII padding adds exactly one byte per character
            raise PaddedSizeMismatch(f"padded body is {len(body)} bytes, not {self.size}")
        return body

    def response(
        self,
        payload: Mapping[str, Any],
        status_code: int = 200,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        headers = {**UNIFORM_HEADERS, **(extra_headers or {})}
        return Response(self.render(payload), status_code=status_code, headers=headers)

"""GET /v1/challenge's per-network issuance limit, run by slowapi through its public API.

slowapi serves here and not on /v1/check: this limit is keyed on the client address
alone, known before any body, which is what its decorator can express. The check's
admission needs the body (the proof of work decides the class), so the bucket table
(``app.admission.buckets``, run by ``limits``) keeps it.

slowapi is pinned (pyproject.toml); how we adapt it, covered by one contract test
(``tests/app/admission/test_issuance.py``):

- its ``Limiter`` reads ``.env`` from the working directory when no file is named: we
  name an empty one of ours (``slowapi.env``), so no stray ``.env`` steers it;
- ``RATELIMIT_*`` environment variables override its arguments (swallowing store
  errors, an in-memory fallback: failing open): the service refuses to start while one
  is set (:func:`refuse_slowapi_environment`);
- its decorator logs each refusal at WARNING: its logger is raised to ERROR (the
  service's own metrics count refusals; an attacker must not fill the logs);
- its key is our HMAC of the subscriber (IPv4 address, IPv6 /64) under the
  network subkey, so no address reaches the store; the store is the admission
  table's (same URI and options, one more connection pool);
- the decorated function is a checkpoint called inside the route: its
  ``RateLimitExceeded`` becomes our constant 429, a store error our 503 (fail closed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request

from app.admission.buckets import Subject, subscriber
from app.client_address import client_ip
from app.errors import RateLimited
from app.limit_syntax import storage_scheme
from app.rate_limit import KEY_PREFIX, STORE_ERRORS, StorageUnavailable, storage_options
from app.settings import Settings

#: Empty on purpose: named so that slowapi never reads a ``.env`` it finds in the cwd.
SLOWAPI_CONFIG = Path(__file__).with_name("slowapi.env")
#: slowapi reads every setting of its own from variables with this prefix.
SLOWAPI_PREFIX = "RATELIMIT_"


class SlowapiEnvironment(Exception):
    """A ``RATELIMIT_*`` variable is set: slowapi would let it override our settings."""


def refuse_slowapi_environment(environ: Mapping[str, str] = os.environ) -> None:
    found = sorted(name for name in environ if name.startswith(SLOWAPI_PREFIX))
    if found:
        raise SlowapiEnvironment(
            f"{', '.join(found)} set: slowapi would read it over SELFCHECK_* (unset it)"
        )


class IssuanceLimit:
    """``check(request)``: returns when the network may have one more challenge; raises
    RateLimited (429) past its limit and StorageUnavailable (503) when the store fails."""

    def __init__(self, settings: Settings, network_key: Callable[[str], str]) -> None:
        refuse_slowapi_environment()
        options = storage_options(
            settings.rate_limit_storage, settings.rate_limit_timeout_ms / 1000
        )
        password = settings.rate_limit_password()
        if password is not None and storage_scheme(settings.rate_limit_storage) != "memory":
            options["password"] = password
        trusted = settings.trusted_proxies

        def key(request: Request) -> str:
            address = client_ip(request.scope, trusted)
            value = subscriber(Subject(address))
            return network_key(value or "unknown")

        logging.getLogger("slowapi").setLevel(logging.ERROR)
        self.limiter = Limiter(
            key_func=key,
            strategy="sliding-window-counter",
            storage_uri=settings.rate_limit_storage,
            storage_options=options,
            headers_enabled=False,
            swallow_errors=False,
            in_memory_fallback_enabled=False,
            key_prefix=KEY_PREFIX,
            config_filename=str(SLOWAPI_CONFIG),
        )

        # slowapi's decorator needs a function with a ``request`` parameter; its scope in
        # the store is the route's path.
        @self.limiter.limit(settings.limits_challenge)
        def challenge_checkpoint(request: Request) -> None:
            return None

        self._checkpoint = challenge_checkpoint

    def check(self, request: Request) -> None:
        try:
            self._checkpoint(request=request)
        except RateLimitExceeded:
            raise RateLimited from None
        except STORE_ERRORS as exc:
            raise StorageUnavailable from exc

"""Anti-enumeration limits: per client network, per target identity, and global.

slowapi (with the ``limits`` engine) guards the route by network and globally,
before the body is even parsed; the per-identity buckets need the validated
body, which slowapi's key functions cannot read, so they use ``limits``
directly on the same storage. Every storage key is an HMAC: no address, NIR,
name or date ever reaches the store. Storage errors are never swallowed: the
route answers 503 instead of checking unlimited (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter
from slowapi import Limiter
from starlette.requests import Request

from app.client_address import client_ip, network_of, wide_network_of
from app.settings import Settings
from lookup_index import Identity, derive_subkey

logger = logging.getLogger("app.rate_limit")
F = TypeVar("F", bound=Callable[..., Any])

#: slowapi reads a ``.env`` from the working directory unless given a file: give it an empty one.
_EMPTY_CONFIG = Path(__file__).with_name("slowapi-empty.env")
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
KEY_PREFIX = "selfcheck"


class StorageUnavailable(Exception):
    """The rate-limit store did not answer in time; callers must fail closed."""


class RateLimits:
    """Owns the limiter and its storage; one per app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.per_process = settings.rate_limit_storage.startswith("memory://")
        options: dict[str, Any] = {"wrap_exceptions": True}
        if urlsplit(settings.rate_limit_storage).scheme in _REDIS_SCHEMES:
            timeout = settings.rate_limit_timeout_ms / 1000
            # Short timeouts: a hung Redis costs one timeout per request, never a frozen worker.
            options |= {
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                "retry_on_timeout": False,
                "health_check_interval": 0,
            }
        self.limiter = Limiter(
            key_func=self._network_key,
            storage_uri=settings.rate_limit_storage,
            storage_options=options,
            strategy="moving-window",
            headers_enabled=False,
            swallow_errors=False,
            in_memory_fallback_enabled=False,
            key_prefix=KEY_PREFIX,
            key_style="endpoint",
            config_filename=str(_EMPTY_CONFIG),
        )
        # slowapi also reads RATELIMIT_* environment variables; none may turn limits off.
        self.limiter.enabled = True
        self.limiter._headers_enabled = False
        self.limiter._swallow_errors = False
        self.storage: Storage = self.limiter.limiter.storage
        self._identity_limits: list[RateLimitItem] = parse_many(settings.limits_per_identity)
        self._identity_strategy = MovingWindowRateLimiter(self.storage)
        self._network_key_secret = b""
        self._identity_key_secret = b""

    def bind_pepper(self, pepper: bytes) -> None:
        """Derive the HMAC keys for storage keys (at start-up, once the pepper is read)."""
        self._network_key_secret = derive_subkey(pepper, "rate-limit/network")
        self._identity_key_secret = derive_subkey(pepper, "rate-limit/identity")

    def _mac(self, secret: bytes, text: str) -> str:
        if not secret:
            raise RuntimeError("rate limits used before bind_pepper()")
        return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]

    # --- slowapi key functions (called with the request, before the body is read) ----------
    def _address(self, request: Request) -> Any:
        cached = request.scope.get("selfcheck.client_ip")
        if cached is None:
            cached = client_ip(request.scope, self.settings.trusted_proxies) or "unknown"
            request.scope["selfcheck.client_ip"] = cached
        return cached

    def _network_key(self, request: Request) -> str:
        address = self._address(request)
        network = "unknown" if address == "unknown" else network_of(address)
        return "net:" + self._mac(self._network_key_secret, network)

    def _wide_network_key(self, request: Request) -> str:
        address = self._address(request)
        wide = None if address == "unknown" else wide_network_of(address)
        return "net48:" + self._mac(self._network_key_secret, wide or "none")

    def _is_not_ipv6(self, request: Request) -> bool:
        address = self._address(request)
        return address == "unknown" or wide_network_of(address) is None

    @staticmethod
    def _global_key(request: Request) -> str:
        return "global"

    def guard(self, endpoint: F) -> F:
        """Decorate a route: global ceiling, per-network and per-/48 limits, in that order."""
        s = self.settings
        guarded = self.limiter.limit(s.limits_per_network, key_func=self._network_key)(endpoint)
        guarded = self.limiter.limit(
            s.limits_per_ipv6_48, key_func=self._wide_network_key, exempt_when=self._is_not_ipv6
        )(guarded)
        guarded = self.limiter.limit(s.global_limit, key_func=self._global_key)(guarded)
        return guarded  # type: ignore[no-any-return]

    # --- identity buckets (called after validation, before hashing) ------------------------
    def hit_identity(self, identity: Identity) -> bool:
        """Count one attempt against the identity's NIR and (name, birth date) buckets."""
        keys = (
            "nir:" + self._mac(self._identity_key_secret, identity.nir),
            "namebirth:"
            + self._mac(
                self._identity_key_secret, f"{identity.last_name}|{identity.birth_date}"
            ),
        )
        for limit in self._identity_limits:
            for key in keys:
                if not self._identity_strategy.hit(limit, KEY_PREFIX, "identity", key):
                    return False
        return True

    def storage_ready(self) -> bool:
        try:
            return bool(self.storage.check())
        except Exception:  # any failure of the store means "not ready"
            return False

    def reset(self) -> None:
        """Forget every counter (tests and operators' drills only)."""
        self.storage.reset()

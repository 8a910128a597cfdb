"""The request log's network id: an HMAC of the client's network under a key of the day.

The key is drawn at random once per UTC day and kept in the shared store with a 48-hour
expiry, so every worker and replica logs the same id for the same network that day
(abuse can be followed across them for two days), and once the key is gone nobody, the
operator included, can tell which network an id was: even IPv4's whole space cannot be
tried against a key that no longer exists. With ``memory://`` storage the key lives in
the process only. The network is the unit of the network bucket: an IPv4 address or an
IPv6 /64.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from app.admission.buckets import Subject, subscriber
from app.client_address import IPAddress

#: How long a day's key lives in the store: investigate for two days, never after.
KEY_TTL_S = 48 * 3600
#: After the store failed, how long to log without an id before asking again.
RETRY_AFTER_FAILURE_S = 10.0
STORE_KEY = "selfcheck:netid/{day}"


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class NetworkIds:
    def __init__(self, store_client: Any | None) -> None:
        #: A redis-py client (the rate-limit store's), or None: a key of this process only.
        self._client = store_client
        self._lock = threading.Lock()
        self._day = ""
        self._key = b""
        self._failed_at = float("-inf")

    def cached_key(self) -> bytes | None:
        """Today's key if this process already holds it (no I/O: safe on the event loop)."""
        return self._key if self._day == today() else None

    def fetch_key(self) -> bytes | None:
        """Today's key, from the store if need be (blocking: call it from a thread)."""
        day = today()
        with self._lock:
            if self._day == day:
                return self._key
            if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE_S:
                return None
            try:
                key = self._shared_key(day)
            except Exception:  # a store failure must never fail the request it logs
                self._failed_at = time.monotonic()
                return None
            # Yesterday's key is dropped here: this process forgets it at once.
            self._day, self._key = day, key
            return key

    def _shared_key(self, day: str) -> bytes:
        if self._client is None:
            return secrets.token_bytes(32)
        name = STORE_KEY.format(day=day)
        self._client.set(name, secrets.token_hex(32), nx=True, ex=KEY_TTL_S)
        stored = self._client.get(name)
        if stored is None:
            raise LookupError("network id key vanished")
        return bytes.fromhex(stored.decode() if isinstance(stored, bytes) else str(stored))

    @staticmethod
    def id_for(key: bytes, address: IPAddress | None) -> str:
        network = subscriber(Subject(address)) or "unknown"
        return hmac.new(key, network.encode(), hashlib.sha256).hexdigest()[:16]

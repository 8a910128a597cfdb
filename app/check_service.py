"""The check itself: validate, limit per identity, hash, look up, answer — one code path.

A hit and a miss run exactly the same statements: the same normalisation,
the same limit calls, the same Argon2 hash, the same binary search, the same
payload builder and padding. Only the data differ.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response

from app.advice import AdviceCatalogue, Lang, negotiate_lang
from app.errors import InvalidRequest, RateLimited, Unavailable, UnsupportedMediaType
from app.padded_json import PaddedJSON
from app.rate_limit import RateLimits
from app.schemas import CheckRequest
from lookup_index import IndexReader, InvalidIdentity, KeyedHasher, canonical_identity, names_of


def is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


#: Checks allowed to wait per hash slot: 8 x 25-60 ms of Argon2 is about one floor.
QUEUE_PER_HASH_SLOT = 8


class CheckService:
    def __init__(
        self,
        reader: IndexReader,
        hasher: KeyedHasher,
        limits: RateLimits,
        renderer: PaddedJSON,
        advice: AdviceCatalogue,
        hash_concurrency: int,
        max_in_flight: int = 0,
    ) -> None:
        self.reader = reader
        self.hasher = hasher
        self.limits = limits
        self.renderer = renderer
        self.advice = advice
        # At most this many Argon2 computations at once, whatever the thread pool size:
        # each one holds its memory cost, and more than the cores only adds latency.
        self._hash_slots = threading.BoundedSemaphore(hash_concurrency)
        # Overload: past this many checks hashing or waiting for a slot, the uniform 503 at
        # once (the floor still holds it), instead of a queue that outgrows the floor.
        # uvicorn's --limit-concurrency answered 19 bytes of text/plain and counted idle
        # connections; this counts only admitted work, and frees the slot when the hash is
        # done, not when the floor releases the answer.
        self._in_flight = threading.BoundedSemaphore(
            max_in_flight or QUEUE_PER_HASH_SLOT * hash_concurrency
        )
        header = reader.header
        self._incident = {"id": header.incident_id, "label": header.incident_label}

    def answer(self, headers: Headers, body: bytes) -> Response:
        """Runs in a worker thread (blocking calls: limit store, Argon2); refusals raise."""
        if not is_json(headers.get("content-type", "")):
            raise UnsupportedMediaType
        try:
            query = CheckRequest.model_validate_json(body)
            identity = canonical_identity(query.nir, query.birth_date, query.last_name)
        except (ValidationError, InvalidIdentity):
            raise InvalidRequest from None
        if not self.limits.hit_identity(identity):
            raise RateLimited
        if not self._in_flight.acquire(blocking=False):
            raise Unavailable
        try:
            with self._hash_slots:
                digest = self.hasher.digest(identity.canonical())
        finally:
            self._in_flight.release()
        found, mask = self.reader.lookup_mask(digest)
        lang = negotiate_lang(query.lang, headers.get("accept-language", ""))
        return self.renderer.response(self.payload(found, mask, lang))

    def payload(self, found: bool, mask: int, lang: Lang) -> dict[str, Any]:
        outcome = ("not_found", "affected")[found]
        exposed = names_of(mask, self.reader.header.categories)
        return {
            "status": outcome,
            "incident": self._incident,
            "exposed": exposed,
            "advice": self.advice.advice(lang, outcome, exposed),
            "lang": lang,
            "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def largest_payloads(self) -> list[dict[str, Any]]:
        """Every answer shape at its largest, to prove at start-up that padding can fit them."""
        every_category = (1 << len(self.reader.header.categories)) - 1
        return [
            self.payload(found, every_category if found else 0, lang)
            for lang in ("fr", "en")
            for found in (False, True)
        ]

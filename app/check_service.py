"""The check itself: validate, limit per identity, hash, look up, answer — one code path.

A hit and a miss run exactly the same statements: the same normalisation,
the same limit calls, the same Argon2 hash, the same binary search, the same
payload builder and padding. Only the data differ.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response

from app.admission.buckets import Admission, Stage, Subject
from app.admission.desk import AdmissionDesk
from app.admission.queue import AdmissionQueue
from app.advice import AdviceCatalogue, Lang, negotiate_lang
from app.client_address import IPAddress
from app.errors import (
    InvalidRequest,
    PublicError,
    RateLimited,
    Unavailable,
    UnsupportedMediaType,
)
from app.padded_json import PaddedJSON
from app.rate_limit import RateLimits
from app.schemas import CheckRequest
from lookup_index import (
    IndexReader,
    InvalidIdentity,
    KeyedHasher,
    KeyUnavailableError,
    canonical_identity,
    names_of,
)


class KeyUnavailable(Unavailable):
    """The key backend (an HSM) failed or did not answer in time: the uniform 503."""

    what_failed = "key token unavailable"
    cause = "key"


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """Key operations beside hashed checks since start-up, in this process.

    Each hashed check is exactly one key operation; more operations than checks means
    something else used the key (an intruder holding the PIN): alert on the difference.
    """

    key_operations: int
    hashed_checks: int


class CheckMetrics(Protocol):
    """What the check tells the metrics (app/metrics.py): durations and a class, no outcome."""

    def hashed(self, admission: str, wait_s: float, hash_s: float) -> None: ...


def is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class CheckService:
    def __init__(
        self,
        reader: IndexReader,
        hasher: KeyedHasher,
        limits: RateLimits,
        renderer: PaddedJSON,
        advice: AdviceCatalogue,
        desk: AdmissionDesk,
        queue: AdmissionQueue,
        metrics: CheckMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.reader = reader
        self.hasher = hasher
        self.limits = limits
        self.renderer = renderer
        self.advice = advice
        self.desk = desk
        self.queue = queue
        self._count_lock = threading.Lock()
        self._hashed_checks = 0
        self._key_operations_at_start = hasher.key.operations
        header = reader.header
        self._incident = {"id": header.incident_id, "label": header.incident_label}

    def refuse_junk(self, subject: Subject, error: PublicError) -> NoReturn:
        """A body we refuse (413, 415, 422) counts only in its own cheap per-network bucket."""
        if not self.limits.admit(Stage.JUNK, Admission.ANY, subject):
            raise RateLimited
        raise error

    def answer(self, headers: Headers, body: bytes, address: IPAddress | None) -> Response:
        """Runs in a worker thread (blocking calls: limit store, Argon2); refusals raise.

        Order: junk limit, proof of work (one HMAC), class network limits, class ceiling
        (waiting in the admission queue), identity buckets, then the hash. A request
        refused at one step never spends the budgets of the steps after it.
        """
        subject = Subject(address)
        if not is_json(headers.get("content-type", "")):
            self.refuse_junk(subject, UnsupportedMediaType())
        try:
            query = CheckRequest.model_validate_json(body)
            identity = canonical_identity(query.nir, query.birth_date, query.last_name)
        except (ValidationError, InvalidIdentity):
            self.refuse_junk(subject, InvalidRequest())
        admission = self.desk.classify(query.altcha, subject)
        if not self.limits.admit(Stage.NETWORK, admission, subject):
            raise RateLimited
        proven = admission is Admission.PROVEN
        self.queue.wait_for_room(lambda: self.limits.ceiling_open(admission), may_wait=proven)
        # The ceiling was only tested: it is spent once the identity may be checked.
        if not self.limits.admit(Stage.IDENTITY, admission, Subject(address, identity)):
            raise RateLimited
        if not self.limits.spend_ceiling(admission):
            raise RateLimited
        with self._count_lock:
            self._hashed_checks += 1
        queued = time.perf_counter()
        try:
            with self.queue.hash_slot():
                slotted = time.perf_counter()
                digest = self.hasher.digest(identity.canonical())
                hashed = time.perf_counter()
        except KeyUnavailableError as exc:
            raise KeyUnavailable from exc
        if self.metrics is not None:
            self.metrics.hashed(admission.value, slotted - queued, hashed - slotted)
        if proven:
            self.limits.count_proven(subject)
        found, mask = self.reader.lookup_mask(digest)
        lang = negotiate_lang(query.lang, headers.get("accept-language", ""))
        return self.renderer.response(self.payload(found, mask, lang))

    def start_counting_key_operations(self) -> None:
        """From here on every key operation should be one hashed check (start-up excluded)."""
        with self._count_lock:
            self._key_operations_at_start = self.hasher.key.operations
            self._hashed_checks = 0

    def key_usage(self) -> KeyUsage:
        with self._count_lock:
            checks = self._hashed_checks
        return KeyUsage(self.hasher.key.operations - self._key_operations_at_start, checks)

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

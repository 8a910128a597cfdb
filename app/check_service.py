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
from app.advice import LANGS, AdviceCatalogue, Lang, negotiate_lang
from app.client_address import IPAddress
from app.content import Content
from app.delivery.mode import PrivateDelivery
from app.delivery.wording import SPAM_HINT, SUBMITTED
from app.errors import (
    InvalidRequest,
    PublicError,
    RateLimited,
    Unavailable,
    UnsupportedMediaType,
)
from app.index_set import IndexSet, Matches
from app.outcome_totals import DailyOutcomes
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
from lookup_index.sealed_contact import contact_binding_key


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
    #: Private delivery: one more key operation per check (the contact binding key).
    contact_bindings: int = 0


class CheckMetrics(Protocol):
    """What the check tells the metrics (app/metrics.py): durations and a class, no outcome."""

    def hashed(self, admission: str, wait_s: float, hash_s: float) -> None: ...


def is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class CheckService:
    def __init__(
        self,
        indexes: IndexSet,
        limits: RateLimits,
        renderer: PaddedJSON,
        advice: AdviceCatalogue,
        desk: AdmissionDesk,
        queue: AdmissionQueue,
        metrics: CheckMetrics | None = None,
        content: Content | None = None,
        delivery: PrivateDelivery | None = None,
    ) -> None:
        self.metrics = metrics
        #: The operator's incident labels and descriptions (SELFCHECK_CONTENT_DIR).
        self.content = content
        #: Daily totals for the DPO, published only once a day is over (no live count).
        self.outcomes: DailyOutcomes | None = None
        #: Replaced whole by a reload; a check reads it once, so it finishes on one set.
        self.indexes = indexes
        self.limits = limits
        self.renderer = renderer
        self.advice = advice
        self.desk = desk
        self.queue = queue
        #: None: screen delivery only (SELFCHECK_DELIVERY=screen).
        self.delivery = delivery
        self._contact_bindings = 0
        self._count_lock = threading.Lock()
        self._hashed_checks = 0
        self._key_operations_at_start = indexes.hasher.key.operations

    @property
    def reader(self) -> IndexReader:
        """The first incident's index (its header names the deployment's parameters)."""
        return self.indexes.first

    @property
    def hasher(self) -> KeyedHasher:
        return self.indexes.hasher

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
        private = self.delivery is not None and self.delivery.private_now()
        with self._count_lock:
            self._hashed_checks += 1
            self._contact_bindings += private
        indexes = self.indexes
        queued = time.perf_counter()
        try:
            with self.queue.hash_slot():
                slotted = time.perf_counter()
                binding = b""
                if private:
                    # The same work hit or miss: one more keyed operation, on the Argon2id
                    # output (never the digest), binding the sealed contact to the identity.
                    stretched = indexes.hasher.stretch(identity.canonical())
                    digest = indexes.hasher.seal(stretched)
                    binding = contact_binding_key(indexes.hasher.key, stretched)
                else:
                    digest = indexes.hasher.digest(identity.canonical())
                hashed = time.perf_counter()
        except KeyUnavailableError as exc:
            raise KeyUnavailable from exc
        if self.metrics is not None:
            self.metrics.hashed(admission.value, slotted - queued, hashed - slotted)
        if proven:
            self.limits.count_proven(subject)
        lang = negotiate_lang(query.lang, headers.get("accept-language", ""))
        if private and self.delivery is not None:
            found, mask, sealed = sealed_lookup(indexes, digest)
            if self.outcomes is not None:
                self.outcomes.count(found)
            self.delivery.submit(found, mask, sealed, binding, lang)
            return self.renderer.response(self.submitted_payload(indexes, lang))
        matches = indexes.lookup(digest)
        if self.outcomes is not None:
            self.outcomes.count(bool(matches))
        return self.renderer.response(self.payload(indexes, matches, lang))

    def start_counting_key_operations(self) -> None:
        """From here on every key operation should be one hashed check (start-up excluded)."""
        with self._count_lock:
            self._key_operations_at_start = self.hasher.key.operations
            self._hashed_checks = 0
            self._contact_bindings = 0

    def discount_key_operations(self, count: int) -> None:
        """Key operations the service did itself (a reload's key-check): not an intruder's."""
        with self._count_lock:
            self._key_operations_at_start += count

    def key_usage(self) -> KeyUsage:
        with self._count_lock:
            checks = self._hashed_checks
            bindings = self._contact_bindings
        return KeyUsage(
            self.hasher.key.operations - self._key_operations_at_start, checks, bindings
        )

    def incident(self, reader: IndexReader, lang: Lang) -> dict[str, str]:
        header = reader.header
        if self.content is None:
            return {"id": header.incident_id, "label": header.incident_label, "description": ""}
        return self.content.incident(header.incident_id, header.incident_label, lang)

    def payload(self, indexes: IndexSet, matches: Matches, lang: Lang) -> dict[str, Any]:
        """One shape for every outcome. ``incidents`` lists every served incident, in order,
        with the categories exposed in it (empty where the identity is not); ``incident``,
        ``exposed`` and ``advice`` cover the matches together (the first incident on a miss)."""
        outcome = ("not_found", "affected")[bool(matches)]
        masks = {id(reader): mask for reader, mask in matches}
        listed: list[dict[str, Any]] = []
        exposed: list[str] = []
        for reader in indexes.readers:
            mask = masks.get(id(reader))
            names = names_of(mask or 0, reader.header.categories)
            exposed += [name for name in names if name not in exposed]
            listed.append(
                {
                    **self.incident(reader, lang),
                    "affected": mask is not None,
                    "exposed": names,
                }
            )
        primary = matches[0][0] if matches else indexes.first
        return {
            "status": outcome,
            "incident": self.incident(primary, lang),
            "exposed": exposed,
            "advice": self.advice.advice(lang, outcome, exposed),
            "incidents": listed,
            "lang": lang,
            "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def submitted_payload(self, indexes: IndexSet, lang: Lang) -> dict[str, Any]:
        """Private delivery: the one answer of every valid query, whatever the outcome."""
        return {
            "status": "submitted",
            "incident": self.incident(indexes.first, lang),
            "message": SUBMITTED[lang],
            "hint": SPAM_HINT[lang],
            "lang": lang,
            "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def largest_payloads(self, indexes: IndexSet | None = None) -> list[dict[str, Any]]:
        """Every answer shape at its largest (every incident matched with every category),
        to prove at start-up, and before a reload, that padding can fit them."""
        indexes = indexes or self.indexes
        everything = [(r, (1 << len(r.header.categories)) - 1) for r in indexes.readers]
        shapes = [
            self.payload(indexes, matches, lang) for lang in LANGS for matches in ([], everything)
        ]
        return shapes + [self.submitted_payload(indexes, lang) for lang in LANGS]


def sealed_lookup(indexes: IndexSet, digest: bytes) -> tuple[bool, int, bytes]:
    """(found, categories, sealed contact) for private delivery: every index is searched, the
    same work hit or miss; the first incident (in set order) holding the identity with a
    sealed contact gives it, so one query is still one outbox entry."""
    found_any, chosen = False, (False, 0, b"")
    for reader in indexes.readers:
        found, mask, sealed = reader.lookup_with_contact(digest)
        if found and sealed and not chosen[0]:
            chosen = (True, mask, sealed)
        found_any = found_any or found
    return chosen if chosen[0] else (found_any, 0, b"")

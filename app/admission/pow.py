"""ALTCHA v2 proof of work with Argon2id: cost steps, issuing and verifying challenges.

The ``altcha`` package does the cryptography. Challenges are deterministic: the
server draws the counter uniformly over ``[0, W)``, derives the key once and signs
its HMAC (``hmac_key_secret``), so verifying a solution costs two HMACs, never a
KDF. A client knowing W still has to try counters one by one: the expected work is
W/2 attempts. Each challenge carries its cost step in its signed ``data``.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import altcha

from lookup_index import KeyMaterial, derive_subkey

ALGORITHM = "ARGON2ID"
#: Longest payload we parse; a genuine one is under 1 kB.
MAX_PAYLOAD_CHARS = 2048
_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, RecursionError)
DeriveKey = Callable[[altcha.ChallengeParameters, bytes, bytes], bytes]


@dataclass(frozen=True, slots=True)
class PowProfile:
    """Argon2id parameters of one attempt, and its measured cost on a mid-range phone.

    ``attempt_ms`` is the median time of one attempt in the widget's WebAssembly worker on
    Chromium with DevTools CPU throttling x4 (docs/BENCHMARKS.md): the cost steps are
    stated as solve times and turned into counter ranges with it.
    """

    time_cost: int
    memory_kib: int
    parallelism: int
    attempt_ms: float


#: Named parameter sets, like the index's Argon2 profiles. "test" is only for the test suite.
PROFILES: dict[str, PowProfile] = {
    "test": PowProfile(time_cost=1, memory_kib=8, parallelism=1, attempt_ms=2.0),
    # attempt_ms: loadtests/bench_pow.py, median of 6 solves (docs/BENCHMARKS.md).
    "standard": PowProfile(time_cost=1, memory_kib=16_384, parallelism=1, attempt_ms=174.0),
    # Twice the memory narrows the phone/attacker gap (x7.9 instead of x9.1): at least one
    # attacker core-second per answer at an 8 s top step, for 2.6 index hashes of server
    # CPU per admitted check instead of 1.4 (the pool makes each challenge with one
    # Argon2id). docs/BENCHMARKS.md, "Proof of work".
    "hardened": PowProfile(time_cost=1, memory_kib=32_768, parallelism=1, attempt_ms=551.0),
}


@dataclass(frozen=True, slots=True)
class CostSteps:
    """Step 0 is a median solve of ``min_solve_ms``; each step doubles it, up to ``max``."""

    profile: PowProfile
    min_solve_ms: int
    max_solve_ms: int

    @property
    def top(self) -> int:
        return max(0, math.ceil(math.log2(self.max_solve_ms / self.min_solve_ms)))

    def counter_range(self, step: int) -> int:
        """W of a step: a median solve takes W/2 attempts; each step doubles W, up to max."""
        lowest = max(1, round(2 * self.min_solve_ms / self.profile.attempt_ms))
        highest = max(lowest, round(2 * self.max_solve_ms / self.profile.attempt_ms))
        return min(lowest << self.clamp(step), highest)

    def clamp(self, step: int) -> int:
        return min(max(step, 0), self.top)


@dataclass(frozen=True, slots=True)
class ProvenPayload:
    """A payload whose signature and solution verified (not yet checked for replay)."""

    step: int
    #: The challenge's signature: unique per challenge, the key of the replay set.
    signature: str
    expires_at: int


class ProofOfWork:
    """Issues and verifies challenges with subkeys derived from the pepper."""

    def __init__(self, steps: CostSteps, ttl_s: int, pepper: KeyMaterial) -> None:
        self.steps = steps
        self.ttl_s = ttl_s
        # Two keys: one signs the parameters, the other the derived key (the fast path).
        self._challenge_secret = derive_subkey(pepper, "pow/challenge")
        self._key_secret = derive_subkey(pepper, "pow/derived-key")

    def create(
        self,
        step: int,
        now: float | None = None,
        counter: int | None = None,
        derive_key: DeriveKey | None = None,
    ) -> dict[str, Any]:
        """One signed challenge (costs one Argon2id): the JSON of ``Challenge.to_dict()``.

        ``counter`` and ``derive_key`` are for tests and load tests that need pre-solved
        payloads without Argon2: the server always draws the counter and derives with
        Argon2id. Verification checks the derived key's signature only, so a payload made
        with another KDF is accepted exactly when its maker holds the server's key.
        """
        step = self.steps.clamp(step)
        if counter is None:
            counter = secrets.randbelow(self.steps.counter_range(step))
        profile = self.steps.profile
        issued = time.time() if now is None else now
        challenge = altcha.create_challenge(
            ALGORITHM,
            profile.time_cost,
            counter=counter,
            memory_cost=profile.memory_kib,
            parallelism=profile.parallelism,
            expires_at=int(issued) + self.ttl_s,
            data={"step": step},
            hmac_secret=self._challenge_secret,
            hmac_key_secret=self._key_secret,
            derive_key=derive_key,
        )
        result: dict[str, Any] = challenge.to_dict()
        return result

    def verify(self, payload: object) -> ProvenPayload | None:
        """The payload's step if it is genuine, solved and unexpired; None otherwise.

        Never raises on client input, and never runs a KDF: a challenge without a key
        signature (not one of ours) is refused before altcha could fall back to deriving.
        """
        if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD_CHARS:
            return None
        try:
            parsed = altcha.Payload.from_base64(payload)
            params = parsed.challenge.parameters
            data = params.data
            step = data.get("step") if isinstance(data, dict) else None
            if not params.key_signature or type(step) is not int:
                return None
            result = altcha.verify_solution(
                parsed, self._challenge_secret, hmac_key_secret=self._key_secret
            )
        except _PARSE_ERRORS:
            return None
        signature = parsed.challenge.signature
        expires_at = params.expires_at
        if not result.verified or not isinstance(signature, str) or type(expires_at) is not int:
            return None
        return ProvenPayload(step=step, signature=signature, expires_at=expires_at)

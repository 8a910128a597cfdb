"""Proof of work for simulated patients: pre-solved payloads, not the phone's second of work.

The load test measures admission, not the CPU contention of Locust solving Argon2id on
the two cores the API also uses (a blocking Argon2 call would also stall every gevent
user of the process). A patient's payload is minted with the service's own key (the load
test holds it, as it built the index) over a cheap KDF instead of Argon2id, and solved
in one attempt: the server checks only the derived key's signature, as for a widget's.
"""

from __future__ import annotations

import hashlib
import threading
from functools import cache

import altcha

from app.admission.pow import PROFILES, CostSteps, ProofOfWork
from loadtests.config import load_config

_lock = threading.Lock()


@cache
def _issuer() -> ProofOfWork:
    service = load_config().service
    steps = CostSteps(
        PROFILES[service.pow_profile], service.pow_min_solve_ms, service.pow_max_solve_ms
    )
    return ProofOfWork(steps, service.pow_ttl_s, service.load_pepper().get_secret_value())


def _cheap_kdf(parameters: altcha.ChallengeParameters, salt: bytes, password: bytes) -> bytes:
    return hashlib.sha256(salt + password).digest()


def presolved_payload(step: int = 0) -> str:
    """A fresh payload for ``step``, accepted once; no Argon2 here nor on the API."""
    with _lock:
        issuer = _issuer()
    counter = issuer.steps.counter_range(issuer.steps.clamp(step)) - 1
    made = issuer.create(step, counter=counter, derive_key=_cheap_kdf)
    challenge = altcha.Challenge.from_dict(made)
    solution = altcha.solve_challenge(
        challenge, derive_key=_cheap_kdf, counter_start=counter, timeout=30
    )
    assert solution is not None
    return altcha.Payload(challenge, solution).to_base64()


def phone_solve_s(step: int) -> float:
    """The phone's median solve time at ``step`` (W/2 attempts of the profile's attempt_ms):
    what a patient whose payload is pre-solved waits instead of solving."""
    with _lock:
        steps = _issuer().steps
    return steps.counter_range(steps.clamp(step)) / 2 * steps.profile.attempt_ms / 1000

"""Pre-solved proof-of-work payloads for the tests: what the widget sends, without the work.

The tests hold the dataset's pepper, so they can sign challenges exactly as the server
does (same subkeys) and solve them in one attempt by starting at the drawn counter.
A few tests solve the server's own challenges for real (``solve``), proving that path.
"""

from __future__ import annotations

import time
from typing import Any

import altcha
import httpx

from app.admission.pow import PROFILES, CostSteps, ProofOfWork

CHALLENGE = "/v1/challenge"


def issuer(pepper: bytes, profile: str = "test", ttl_s: int = 120) -> ProofOfWork:
    return ProofOfWork(CostSteps(PROFILES[profile], 1000, 8000), ttl_s, pepper)


def solve(challenge: dict[str, Any], counter_start: int = 0) -> str:
    """Solve a challenge (the real work from ``counter_start``); the payload to send."""
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, counter_start=counter_start, timeout=60)
    assert solution is not None, "no solution within 60 s"
    return altcha.Payload(parsed, solution).to_base64()


def presolved(
    pepper: bytes, step: int = 0, *, issued_at: float | None = None, profile: str = "test"
) -> str:
    """A fresh payload the server will accept once, solved in a single attempt."""
    pow_ = issuer(pepper, profile)
    counter = pow_.steps.counter_range(pow_.steps.clamp(step)) - 1
    issued = time.time() if issued_at is None else issued_at
    return solve(pow_.create(step, now=issued, counter=counter), counter_start=counter)


def fetch_and_solve(http: httpx.Client) -> str:
    response = http.get(CHALLENGE)
    assert response.status_code == 200, response.status_code
    return solve(response.json())

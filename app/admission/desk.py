"""Hands out challenges and sorts checks into admission classes (blocking: worker threads)."""

from __future__ import annotations

import time
from typing import Any

from app.admission.buckets import Admission, Subject
from app.admission.cost import CostControl
from app.admission.issuance import IssuanceLimit
from app.admission.pool import ChallengePool
from app.admission.pow import PROFILES, CostSteps, ProofOfWork
from app.rate_limit import RateLimits
from app.settings import Settings
from lookup_index import KeyMaterial

#: Challenges older than this stay in the pool no longer, so a patient always has most of
#: the TTL to solve and send (a challenge's expiry is set when it is made).
POOL_MAX_AGE_FRACTION = 0.2


class PoolEmpty(Exception):
    """No challenge ready (503): the pool refills at its capped CPU share."""


class AdmissionDesk:
    def __init__(self, settings: Settings, limits: RateLimits, pepper: KeyMaterial) -> None:
        self.enabled = settings.pow == "on"
        self.limits = limits
        self.issuance = IssuanceLimit(settings, limits.network_key)
        steps = CostSteps(
            PROFILES[settings.pow_profile], settings.pow_min_solve_ms, settings.pow_max_solve_ms
        )
        self.pow = ProofOfWork(steps, settings.pow_ttl_s, pepper)
        self.cost = CostControl(steps.top, settings.attack_after_s, limits.proven_load)
        self.pool = ChallengePool(
            self.pow.create,
            steps.top,
            settings.pow_pool_size,
            settings.pow_pool_cpu_share,
            settings.pow_ttl_s * POOL_MAX_AGE_FRACTION,
            lambda: self.cost.step,
        )

    def start(self) -> None:
        if self.enabled:
            self.pool.start()

    def stop(self) -> None:
        self.pool.stop()

    def required_step(self, subject: Subject) -> int:
        return self.pow.steps.clamp(self.cost.update() + self.limits.network_step(subject))

    def issue(self, subject: Subject) -> dict[str, Any]:
        """A challenge from the pool (the issuance limit was checked by the route)."""
        challenge = self.pool.take(self.required_step(subject))
        if challenge is None:
            raise PoolEmpty
        return challenge

    def classify(self, payload: str | None, subject: Subject) -> Admission:
        """PROVEN for a genuine, fresh, current and first-used solution; UNPROVEN otherwise."""
        if not self.enabled or payload is None:
            return Admission.UNPROVEN
        proven = self.pow.verify(payload)
        if proven is None:
            return Admission.UNPROVEN
        # Solutions for a step more than one below today's are stale: that bounds stockpiling.
        if proven.step < self.required_step(subject) - 1:
            return Admission.UNPROVEN
        ttl = int(proven.expires_at - time.time()) + 1
        if not self.limits.first_use(proven.signature, ttl):
            return Admission.UNPROVEN
        return Admission.PROVEN

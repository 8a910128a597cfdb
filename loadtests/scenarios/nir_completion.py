"""NIR completion: the attacker knows one person's name and birth date and tries candidate
NIRs (all with valid keys) from a new network each time, so only the per-identity limit
(on name + birth date) can stop it. After a run of refusals it moves to another victim.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, constant, task

from loadtests.config import load_config
from loadtests.ledger import NIR_COMPLETION, Tier
from loadtests.scenarios.common import attacker_networks, post_attack
from lookup_index.generator import SyntheticPopulation

#: Consecutive refusals after which the attacker moves to another victim.
GIVE_UP_AFTER = 20


class NirCompletionAttacker(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        config = load_config()
        # A synthetic victim no patient of this run checks: the patients' buckets stay apart.
        self.population = SyntheticPopulation(config.seed + 7919)
        self.rng = random.Random(config.seed)
        # No proof of work: the unproven class's identity buckets bound it.
        self.tiers = Tier.parse_many(config.service.limits_per_identity_unproven)
        self.victims = 0
        self.new_victim()

    def new_victim(self) -> None:
        self.victims += 1
        self.label = f"victim-{self.victims}"
        self.born = self.population.birth_date()
        self.last_name = self.population.last_name()
        self.refused_in_a_row = 0

    @task
    def try_candidate(self) -> None:
        candidate = self.population.nir(self.rng.choice((1, 2)), self.born)
        body = {
            "nir": candidate,
            "birth_date": self.born.isoformat(),
            "last_name": self.last_name,
        }
        status = post_attack(
            self,
            NIR_COMPLETION,
            self.label,
            body,
            attacker_networks().next(),
            self.tiers,
            (200,),
            "attack-nir: POST /v1/check (one victim, many NIRs)",
        )
        self.refused_in_a_row = self.refused_in_a_row + 1 if status == 429 else 0
        if self.refused_in_a_row >= GIVE_UP_AFTER:
            self.new_victim()

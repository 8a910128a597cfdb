"""List validation: the attacker holds the leaked export and replays its identities to
learn which are real, first from one network (stopped by the per-network limit), then
rotating through fresh networks after every 429 (each network again bounded by the
same limit: what a botnet gains scales with the networks it owns, never per network).

For an attacker a 429 is the defence working (a success); an admitted request is
fine while the configured limits allow it and a failure the moment it exceeds them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from locust import FastHttpUser, constant, task

from loadtests.config import load_config
from loadtests.ledger import LIST_MANY_NETWORKS, LIST_ONE_NETWORK, Tier
from loadtests.scenarios.common import (
    attacker_networks,
    cycle_shuffled,
    leaked_identities,
    post_attack,
)


class ListValidationAttacker(FastHttpUser):
    wait_time = constant(0)  # as fast as the answers come back: a greedy script

    def on_start(self) -> None:
        config = load_config()
        self.identities: Iterator[dict[str, str]] = cycle_shuffled(
            leaked_identities(config.leaked_list), config.seed
        )
        self.tiers = Tier.parse_many(config.service.limits_per_network)
        self.started = time.monotonic()
        self.network = attacker_networks().next()
        self.distributed = False

    @task
    def replay(self) -> None:
        config = load_config()
        if not self.distributed and time.monotonic() - self.started > config.single_network_s:
            self.distributed = True
            self.network = attacker_networks().next()
        scenario = LIST_MANY_NETWORKS if self.distributed else LIST_ONE_NETWORK
        label = "many networks" if self.distributed else "one network"
        status = post_attack(
            self,
            scenario,
            self.network,
            next(self.identities),
            self.network,
            self.tiers,
            # A malformed row gets 422 from the junk limit, never spending the network's.
            (200,),
            f"attack-list: POST /v1/check ({label})",
            invalid_rows=True,
        )
        if status == 429 and self.distributed:
            self.network = attacker_networks().next()

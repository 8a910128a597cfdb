"""Closed-loop checkers for ``bench_capacity.py``: each user sends a check, waits for the
answer, sends the next. With the response floor on, one user offers at most
1000 / floor_ms checks per second, so the offered load is ``users * 1000 / floor_ms``.

The API is started by the benchmark with limits raised out of the way: this measures
CPU capacity, not the limits (``run.sh`` does that).
"""

from __future__ import annotations

import random
from typing import Any

from locust import FastHttpUser, constant, task

from loadtests.config import load_config
from loadtests.scenarios.common import CHECK_PATH, patient_networks, probe_pool, query_of


class CapacityChecker(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.pool = probe_pool(load_config().probes)

    @task
    def check(self) -> None:
        probe = self.rng.choice(self.pool.valid)
        response: Any
        with self.client.post(
            CHECK_PATH,
            json=query_of(probe),
            # A fresh network per check, as from many patients: the per-network limit
            # stays production's and never trips.
            headers={"X-Forwarded-For": patient_networks().next()},
            name="capacity: POST /v1/check",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")

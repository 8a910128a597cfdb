"""Shared address: several patients behind one source address (a carrier's NAT, a hospital,
a company), each paying the proof of work as the widget does.

Every patient of this scenario connects from ``SHARED_ADDRESS`` (``loadtests/bots.py``):
the API sees that one address as the socket's peer. Each check fetches a challenge
there (the issuance limit counts it), waits the phone's median solve time for the
challenge's step, then sends a pre-solved payload of that step (``proof.py``: the load
test measures admission, not Locust solving Argon2id on the API's cores). Together they
check far more often than the unproven class allows one address: only the proven
class's per-address allowance lets them through, and at least ``LOADTEST_ANSWERED_SHARE``
of their checks must be answered.
"""

from __future__ import annotations

import json
import random
import time

from locust import User, between, task

from loadtests.bots import SHARED_ADDRESS, LoopbackClient
from loadtests.config import load_config
from loadtests.ledger import SHARED_ADDRESS as COHORT
from loadtests.scenarios.common import ledger, probe_pool, query_of
from loadtests.scenarios.patient import judge
from loadtests.scenarios.proof import phone_solve_s, presolved_payload

CHALLENGE_NAME = "shared address: GET /v1/challenge"
CHECK_NAME = "shared address: POST /v1/check"


class SharedAddressPatient(User):
    wait_time = between(1, 4)  # reading the answer, then the next person at the desk

    def on_start(self) -> None:
        config = load_config()
        self.http = LoopbackClient(self.host or config.host)
        self.pool = probe_pool(config.probes)
        self.rng = random.Random()

    def _report(self, method: str, name: str, elapsed_ms: float, length: int, error: str) -> None:
        self.environment.events.request.fire(
            request_type=method,
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            exception=RuntimeError(error) if error != "ok" else None,
            context={},
        )

    @task
    def check(self) -> None:
        config = load_config()
        sent = time.time()
        challenge = self.http.challenge(SHARED_ADDRESS)
        ok = "ok" if challenge.status == 200 else f"challenge refused (HTTP {challenge.status})"
        self._report("GET", CHALLENGE_NAME, challenge.elapsed_ms, len(challenge.content), ok)
        if challenge.status != 200:
            ledger().cohort_check(COHORT, False, sent, challenge.elapsed_ms)
            return
        step = int(json.loads(challenge.content)["parameters"]["data"]["step"])
        time.sleep(phone_solve_s(step))
        probe = self.rng.choice(self.pool.valid)
        body = {**query_of(probe), "altcha": presolved_payload(step)}
        sent = time.time()
        reply = self.http.check(SHARED_ADDRESS, body)
        outcome = judge(reply.status, reply.content, probe.expected, config.service.response_size)
        self._report("POST", CHECK_NAME, reply.elapsed_ms, len(reply.content), outcome)
        ledger().cohort_check(COHORT, outcome == "ok", sent, reply.elapsed_ms)

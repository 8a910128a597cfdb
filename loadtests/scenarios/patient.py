"""Patient: opens the practice's page with the widget, types an identity, reads the answer,
sometimes checks a second one (after a typo, or for a relative).

Every journey is a new patient on a network of their own. Each answer is judged
against the probes file's expected answer: right status, right outcome, the fixed
body size. Anything else (a wrong answer, a 429, a 5xx) is a failure: a patient
must never be locked out or misinformed below the target rate.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from locust import FastHttpUser, task

from app.routes.paths import CHECK_PATH
from loadtests.config import load_config
from loadtests.ledger import PATIENT_CHECK_NAME
from loadtests.scenarios.catalogue import fixed_users
from loadtests.scenarios.common import (
    ledger,
    mistype_name,
    mistype_nir,
    page_with_assets,
    patient_networks,
    probe_pool,
    query_of,
    think,
)
from loadtests.scenarios.proof import presolved_payload

ACCEPT_LANGUAGE = {"fr": "fr-FR,fr;q=0.9,en;q=0.5", "en": "en-GB,en;q=0.9"}


@dataclass(frozen=True, slots=True)
class Query:
    body: dict[str, str]
    #: "affected" | "not_found" (HTTP 200) or "invalid" (HTTP 422).
    expected: str


def judge(status: int, content: bytes, expected: str, size: int) -> str:
    """``ok`` or what went wrong, in words (no identity in it)."""
    if len(content) != size:
        return f"body of {len(content)} bytes, expected {size}"
    if expected == "invalid":
        return "ok" if status == 422 else f"expected 422, got HTTP {status}"
    if status == 429:
        return "patient rate-limited (429)"
    if status != 200:
        return f"HTTP {status}"
    answer = json.loads(content).get("status")
    return "ok" if answer == expected else f"wrong answer: {answer}, expected {expected}"


class PatientUser(FastHttpUser):
    weight = 1

    def on_start(self) -> None:
        config = load_config()
        self.rng = random.Random()
        self.pool = probe_pool(config.probes)
        fixed = fixed_users()
        users = getattr(self.environment.parsed_options, "num_users", None) or fixed + 1
        self.pacing_s = config.patient_pacing_s(max(users - fixed, 1))
        ledger().patient_pacing_s = self.pacing_s
        ledger().patient_warmup_s = config.steady_warmup_s
        # Patients arrive at random moments, not in lockstep with the spawn.
        time.sleep(self.rng.uniform(0, self.pacing_s))
        self.journey_started = time.monotonic()

    def wait_time(self) -> float:
        # Constant pacing: one journey starts every pacing_s seconds per user.
        return max(0.0, self.pacing_s - (time.monotonic() - self.journey_started))

    @task
    def journey(self) -> None:
        self.journey_started = time.monotonic()
        config = load_config()
        network = patient_networks().next()
        lang = "en" if self.rng.random() < 0.1 else "fr"
        headers = {"X-Forwarded-For": network, "Accept-Language": ACCEPT_LANGUAGE[lang]}
        page_with_assets(self, "/", headers, "patient", config.widget_optional)
        page_with_assets(self, "/widget", headers, "patient", config.widget_optional, lang)
        think(self.rng)
        first, correction = self.first_query()
        self.check(first, headers)
        if correction is not None:
            think(self.rng)
            self.check(correction, headers)
        elif self.rng.random() < config.second_check_share:
            think(self.rng)
            self.check(self.valid_query(), headers)

    def valid_query(self) -> Query:
        probe = self.rng.choice(self.pool.valid)
        return Query(query_of(probe), probe.expected)

    def first_query(self) -> tuple[Query, Query | None]:
        """The first submission and, after a typo, the corrected one."""
        config = load_config()
        roll = self.rng.random()
        if roll < config.invalid_share and self.pool.invalid:
            probe = self.rng.choice(self.pool.invalid)
            return Query(query_of(probe), "invalid"), None
        correct = self.valid_query()
        if roll < config.invalid_share + config.typo_share:
            if self.rng.random() < 0.5:
                body = {**correct.body, "nir": mistype_nir(correct.body["nir"], self.rng)}
                return Query(body, "invalid"), correct
            body = {**correct.body, "last_name": mistype_name(correct.body["last_name"], self.rng)}
            return Query(body, "not_found"), correct
        return correct, None

    def check(self, query: Query, headers: dict[str, str]) -> None:
        size = load_config().service.response_size
        sent = time.time()
        started = time.perf_counter()
        response: Any
        with self.client.post(
            CHECK_PATH,
            # Patients pay the proof of work, as the widget does (pre-solved: see proof.py).
            json={**query.body, "altcha": presolved_payload()},
            headers=headers,
            name=PATIENT_CHECK_NAME,
            catch_response=True,
        ) as response:
            elapsed_ms = (time.perf_counter() - started) * 1000
            outcome = judge(response.status_code, response.content or b"", query.expected, size)
            if outcome == "ok":
                response.success()
            else:
                response.failure(outcome)
        ledger().patient_check(outcome, sent, elapsed_ms)

"""Proof of work and admission classes against a real server process and a real Redis.

Whether a check was admitted as proven cannot be read from its answer (answers are
uniform), so each test first spends the unproven budget of its client: from then on a
check is answered 200 only if its proof of work was accepted, and 429 otherwise.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import altcha
import httpx
import pytest
from scipy import stats

from app.admission.pow import PROFILES, CostSteps
from app.settings import Settings
from lookup_index.pepper import load_pepper
from tests.app.helpers import GENEROUS_ENV
from tests.support.dataset import Dataset
from tests.support.pow import CHALLENGE, presolved, solve
from tests.support.rate_limits import CHECK, check_body, flush, valid_probes
from tests.support.servers import ApiServer, RedisServer, api_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def env_for(dataset: Dataset, redis: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_RATE_LIMIT_STORAGE": redis.url,
        "SELFCHECK_HASH_CONCURRENCY": "1",
        "SELFCHECK_LOG_LEVEL": "warning",
        "SELFCHECK_POW_PROFILE": "test",
        **GENEROUS_ENV,
        # The unproven class gets one check per network: the next one tells the classes apart.
        "SELFCHECK_LIMITS_PER_NETWORK": "1/minute",
        **extra,
    }


@contextlib.contextmanager
def server(
    dataset: Dataset, redis: RedisServer, tmp_path: Path, **extra: str
) -> Iterator[ApiServer]:
    flush(redis.url)
    try:
        with api_server(env_for(dataset, redis, **extra), tmp_path / "api.log") as api:
            yield api
    finally:
        flush(redis.url)


#: The proven class's defaults, so the shared server shows what a deployment admits.
PROVEN_DEFAULTS = {
    f"SELFCHECK_{name.upper()}": str(Settings.model_fields[name].default)
    for name in ("limits_per_address_proven", "global_limit_proven", "limits_challenge")
}


@pytest.fixture(scope="module")
def shared_api(
    dataset: Dataset, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """One server for the tests that need no setting of their own; each uses its own /24.

    Step 0 is a 100 ms solve here (W = 100 with the test profile), so real solves are quick.
    """
    log_dir = tmp_path_factory.mktemp("admission")
    with server(
        dataset, redis, log_dir, SELFCHECK_POW_MIN_SOLVE_MS="100", **PROVEN_DEFAULTS
    ) as api:
        yield api


def client(api: ApiServer, address: str = "127.0.3.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, base_url=api.url, timeout=30)


class Patient:
    """One client address with a supply of distinct identities."""

    def __init__(self, http: httpx.Client, bodies: list[dict[str, str]]) -> None:
        self.http = http
        self.bodies = iter(bodies)

    def check(self, altcha_payload: str | None = None, body: dict[str, str] | None = None) -> int:
        sent: dict[str, Any] = dict(body or next(self.bodies))
        if altcha_payload is not None:
            sent["altcha"] = altcha_payload
        return self.http.post(CHECK, json=sent).status_code

    def spend_unproven_budget(self) -> None:
        assert self.check() == 200
        assert self.check() == 429


@pytest.fixture
def bodies(dataset: Dataset) -> list[dict[str, str]]:
    return [check_body(p) for p in valid_probes(dataset.probes)]


@pytest.fixture
def pepper(dataset: Dataset) -> bytes:
    return load_pepper(dataset.key)


def test_challenge_solve_check_round_trip_and_replay(
    shared_api: ApiServer, bodies: list[dict[str, str]]
) -> None:
    with client(shared_api, "127.0.10.1") as http:
        patient = Patient(http, bodies)
        patient.spend_unproven_budget()
        response = http.get(CHALLENGE)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        challenge = response.json()
        assert challenge["parameters"]["algorithm"] == "ARGON2ID"
        payload = solve(challenge)  # the real work, with the Python solver
        assert patient.check(payload) == 200
        # Accepted once: the same payload again is no proof at all.
        assert patient.check(payload) == 429


def test_expired_forged_and_invalid_payloads_count_as_unproven(
    shared_api: ApiServer, bodies: list[dict[str, str]], pepper: bytes
) -> None:
    with client(shared_api, "127.0.11.1") as http:
        patient = Patient(http, bodies)
        patient.spend_unproven_budget()
        expired = presolved(pepper, issued_at=time.time() - 130)  # TTL is 120 s
        forged = presolved(b"\x01" * 32)  # signed with another key
        assert patient.check(expired) == 429
        assert patient.check(forged) == 429
        assert patient.check("not base64 at all") == 429
        assert patient.check("") == 429
        # The control: a genuine payload is still accepted from this very client.
        assert patient.check(presolved(pepper)) == 200


def test_a_tampered_step_breaks_the_signature(
    shared_api: ApiServer, bodies: list[dict[str, str]], pepper: bytes
) -> None:
    with client(shared_api, "127.0.12.1") as http:
        patient = Patient(http, bodies)
        patient.spend_unproven_budget()
        genuine = altcha.Payload.from_base64(presolved(pepper))
        genuine.challenge.parameters.data = {"step": 3}
        assert patient.check(genuine.to_base64()) == 429
        genuine.challenge.parameters.data = {"step": 0}  # back as signed: accepted
        assert patient.check(genuine.to_base64()) == 200


def test_a_stale_step_is_refused_once_a_site_escalates(
    dataset: Dataset,
    redis: RedisServer,
    tmp_path: Path,
    bodies: list[dict[str, str]],
    pepper: bytes,
) -> None:
    # Past 2 proven checks a minute the site's step rises by one, by two past 4.
    with (
        server(dataset, redis, tmp_path, SELFCHECK_POW_ESCALATE_AFTER="2/minute") as api,
        client(api) as http,
    ):
        patient = Patient(http, bodies)
        patient.spend_unproven_budget()
        assert http.get(CHALLENGE).json()["parameters"]["data"] == {"step": 0}
        for _ in range(4):
            assert patient.check(presolved(pepper, step=0)) == 200
        assert http.get(CHALLENGE).json()["parameters"]["data"] == {"step": 2}
        # Step 0 is now more than one below the site's step 2: stale.
        assert patient.check(presolved(pepper, step=0)) == 429
        assert patient.check(presolved(pepper, step=1)) == 200
        # Another site is not affected.
        with client(api, "127.0.4.1") as other:
            assert other.get(CHALLENGE).json()["parameters"]["data"] == {"step": 0}


def test_counters_are_spread_uniformly_over_the_step_range(shared_api: ApiServer) -> None:
    width = CostSteps(PROFILES["test"], 100, 8000).counter_range(0)
    counters: list[int] = []
    for n in range(6):  # 40 challenges from each of 6 addresses (60 a minute each, by default)
        with client(shared_api, f"127.0.13.{n + 1}") as http:
            while len(counters) < 40 * (n + 1):
                response = http.get(CHALLENGE)
                if response.status_code == 503:  # the pool refills at its capped share
                    time.sleep(0.05)
                    continue
                solution = altcha.solve_challenge(altcha.Challenge.from_dict(response.json()))
                assert solution is not None
                counters.append(solution.counter)
    assert all(0 <= c < width for c in counters)
    # A client knowing W cannot skip work: the counter is anywhere in [0, W), evenly.
    assert stats.kstest([c / width for c in counters], "uniform").pvalue > 0.001
    assert max(counters) > width * 0.8
    assert min(counters) < width * 0.2


def test_an_empty_pool_answers_the_uniform_503(
    dataset: Dataset, redis: RedisServer, tmp_path: Path
) -> None:
    # One real (standard) challenge at a time, refilled at 1% of a core: seconds apart.
    with (
        server(
            dataset,
            redis,
            tmp_path,
            SELFCHECK_POW_PROFILE="standard",
            SELFCHECK_POW_POOL_SIZE="1",
            SELFCHECK_POW_POOL_CPU_SHARE="0.01",
        ) as api,
        client(api) as http,
    ):
        deadline = time.monotonic() + 20
        while (first := http.get(CHALLENGE)).status_code != 200:
            assert time.monotonic() < deadline, "the pool never filled"
            time.sleep(0.1)
        empty = http.get(CHALLENGE)
        refused = http.post(CHECK, content=b"{}", headers={"content-type": "application/json"})
    assert empty.status_code == 503
    assert empty.headers["retry-after"] == "30"
    # The same size as every other refusal of the service.
    assert len(empty.content) == len(refused.content) == 8192
    assert first.headers["cache-control"] == "no-store"


def test_the_unproven_ceiling_does_not_touch_proven_patients(
    dataset: Dataset,
    redis: RedisServer,
    tmp_path: Path,
    bodies: list[dict[str, str]],
    pepper: bytes,
) -> None:
    with server(
        dataset,
        redis,
        tmp_path,
        SELFCHECK_LIMITS_PER_NETWORK="100/minute",
        SELFCHECK_GLOBAL_LIMIT="3/minute",
    ) as api:
        statuses = []
        for n, body in enumerate(bodies[:10]):
            with client(api, f"127.0.5.{n + 1}") as http:
                statuses.append(Patient(http, []).check(body=body))
        assert statuses == [200] * 3 + [429] * 7
        for n, body in enumerate(bodies[10:20]):
            with client(api, f"127.0.6.{n + 1}") as http:
                assert Patient(http, []).check(presolved(pepper), body) == 200


def test_refused_patients_keep_their_identity_budget(
    dataset: Dataset,
    redis: RedisServer,
    tmp_path: Path,
    bodies: list[dict[str, str]],
    pepper: bytes,
) -> None:
    body = bodies[0]
    with (
        server(
            dataset,
            redis,
            tmp_path,
            SELFCHECK_LIMITS_PER_IDENTITY="2/day",
            SELFCHECK_GLOBAL_LIMIT_PROVEN="1/second",
            SELFCHECK_ADMISSION_WAIT_MS="0",
        ) as api,
        client(api) as http,
    ):
        patient = Patient(http, [])
        assert patient.check(presolved(pepper), body) == 200
        # The ceiling is full: these are refused before their identity is counted.
        assert [patient.check(presolved(pepper), body) for _ in range(5)] == [429] * 5
        time.sleep(2.1)  # the sliding window empties within two windows
        assert patient.check(presolved(pepper), body) == 200
        # Now the identity's two checks of the day are spent.
        time.sleep(2.1)
        assert patient.check(presolved(pepper), body) == 429


def test_patients_sharing_one_address_are_admitted(
    shared_api: ApiServer, bodies: list[dict[str, str]], pepper: bytes
) -> None:
    # 40 patients behind one carrier-NAT address, each paying, under the default proven
    # limits; a few solve the server's challenges for real, the rest bring pre-solved ones.
    with client(shared_api, "127.0.14.7") as http:
        patient = Patient(http, bodies)
        patient.spend_unproven_budget()
        real = [patient.check(solve(http.get(CHALLENGE).json())) for _ in range(5)]
        presolved_ = [patient.check(presolved(pepper)) for _ in range(35)]
    assert real + presolved_ == [200] * 40

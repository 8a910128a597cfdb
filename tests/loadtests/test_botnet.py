"""The botnet and shared-address scenarios' code path, small: the address spreading, the
loopback client against a real server (which must see each bot's own address), the
Python solver's real proof of work, and the thresholds that judge a run.

The scenarios themselves run in ``make loadtest`` (Locust is never imported here); they
are thin wrappers over ``loadtests/bots.py``, which this drives directly.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests import ledger as books
from loadtests.bots import (
    MAX_BOTS,
    SHARED_ADDRESS,
    LoopbackClient,
    bot_address,
    is_bot_address,
    solve_challenge,
)
from loadtests.ledger import BOTNET_SOLVING, BOTNET_UNPROVEN, PATIENTS, WHOLE_CLASS, AttackLog
from loadtests.thresholds import Criteria, botnet_cost_note, botnet_verdicts
from lookup_index.pepper import load_pepper
from tests.app.helpers import GENEROUS_ENV
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import check_body, valid_probes
from tests.support.servers import ApiServer, api_server


def test_every_bot_is_its_own_slash_24_on_loopback_never_the_proxy() -> None:
    addresses = [bot_address(n) for n in range(2000)]
    networks = {ipaddress.ip_network(f"{a}/24", strict=False) for a in addresses}
    assert len(set(addresses)) == len(networks) == 2000
    loopback = ipaddress.ip_network("127.0.0.0/8")
    assert all(ipaddress.ip_address(a) in loopback for a in addresses)
    # 127.0.0.1 is the load test's trusted proxy: a bot there could choose its address.
    assert not [a for a in addresses if a.startswith("127.0.")]
    assert all(map(is_bot_address, addresses))
    assert not is_bot_address(SHARED_ADDRESS)
    assert bot_address(MAX_BOTS - 1) == "127.254.255.1"
    with pytest.raises(ValueError, match="outside"):
        bot_address(MAX_BOTS)


@pytest.fixture(scope="module")
def served(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_LOG_LEVEL": "warning",
        "SELFCHECK_POW_PROFILE": "test",
        "SELFCHECK_POW_MIN_SOLVE_MS": "100",
        **GENEROUS_ENV,
        # One unproven check per address: the second one tells whose address the server saw.
        "SELFCHECK_LIMITS_PER_NETWORK": "1/minute",
        "SELFCHECK_LIMITS_PER_ADDRESS_PROVEN": "120/minute",
        # X-Forwarded-For trusted from 127.0.0.1 only, as in the load test: bots never use it.
        "SELFCHECK_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    log = tmp_path_factory.mktemp("botnet") / "api.log"
    with api_server(env, log, inherit_settings=False) as server:
        yield server


@pytest.fixture
def bodies(dataset: Dataset) -> list[dict[str, Any]]:
    return [check_body(p) for p in valid_probes(dataset.probes)]


@pytest.mark.slow
def test_bots_are_seen_by_their_own_address_and_solvers_are_proven(
    served: ApiServer, dataset: Dataset, bodies: list[dict[str, Any]]
) -> None:
    http = LoopbackClient(served.url)
    bots = [bot_address(n) for n in range(40)]
    first = [http.check(bot, bodies[n]).status for n, bot in enumerate(bots)]
    again = [http.check(bot, bodies[n + 40]).status for n, bot in enumerate(bots)]
    # Each bot had its own unproven budget (one check), so the server keyed its own address.
    assert first == [200] * 40
    assert again == [429] * 40
    # A solving bot: a challenge from its address, the Python solver's real work, proven.
    reply = http.challenge(bots[0])
    assert reply.status == 200
    payload, cpu_s = solve_challenge(json.loads(reply.content))
    assert cpu_s > 0
    assert http.check(bots[0], {**bodies[90], "altcha": payload}).status == 200
    # Patients behind one address, each with a proof of work: all admitted.
    pepper = load_pepper(dataset.key)
    shared = [
        http.check(SHARED_ADDRESS, {**bodies[100 + n], "altcha": presolved(pepper)}).status
        for n in range(8)
    ]
    assert shared == [200] * 8


def ledger_of(
    unproven_admitted: list[float], patients: list[list[float]], shared: list[list[float]]
) -> dict[str, Any]:
    unproven = AttackLog()
    unproven.admitted[WHOLE_CLASS] = unproven_admitted
    unproven.outcomes["refused (429)"] = 2500
    solving = AttackLog()
    solving.admitted[WHOLE_CLASS] = [1000.5, 1001.5]
    solving.outcomes["admitted (200)"] = 2
    return {
        "attacks": {BOTNET_UNPROVEN: unproven.as_dict(), BOTNET_SOLVING: solving.as_dict()},
        "sources": {
            BOTNET_UNPROVEN: [bot_address(n) for n in range(1990)],
            BOTNET_SOLVING: [bot_address(n) for n in range(1990, 2000)],
        },
        "cohorts": {PATIENTS: patients, books.SHARED_ADDRESS: shared},
        "solve_cpu_s": {BOTNET_SOLVING: 0.5},
    }


def test_the_botnet_thresholds_pass_a_good_run_and_fail_each_breach(tmp_path: Path) -> None:
    criteria = Criteria(
        floor_ms=250,
        p99_margin_ms=100,
        target_rate=15,
        min_rate_share=0.9,
        limits={},
        clock_slack_s=2,
        unproven_ceiling="5/second",
    )
    # 5 admitted a second for 20 s: exactly the ceiling.
    at_ceiling = [1000 + i / 5 for i in range(100)]
    patients = [[1000 + i / 10, 260.0, 1.0] for i in range(200)]
    shared = [[1000 + i, 255.0, 1.0] for i in range(20)]

    def failed(ledger: dict[str, Any]) -> set[str]:
        verdicts = botnet_verdicts(
            ledger,
            {k: AttackLog.from_dict(v) for k, v in ledger["attacks"].items()},
            criteria,
        )
        assert len(verdicts) == 4
        return {v.threshold.split(":")[0] for v in verdicts if not v.passed}

    assert failed(ledger_of(at_ceiling, patients, shared)) == set()
    # Twice the ceiling admitted; patients slow (p95 over floor + 500 ms) and 2% refused;
    # one shared-address patient in 20 refused.
    twice = [1000 + i / 10 for i in range(200)]
    slow = [[t, 900.0 if i % 10 == 0 else 260.0, 0.0 if i % 50 == 0 else 1.0]
            for i, (t, _, _) in enumerate(patients)]  # fmt: skip
    refused_shared = [*shared[:-1], [1019.0, 255.0, 0.0]]
    assert failed(ledger_of(twice, slow, refused_shared)) == {
        "botnet, unproven bots",
        "patients under the botnet",
        "patients behind one shared address",
    }
    few = ledger_of(at_ceiling, patients, shared)
    few["sources"][BOTNET_UNPROVEN] = few["sources"][BOTNET_UNPROVEN][:100]
    assert failed(few) == {"botnet"}
    # A run too short to send a request from every address: said so, not failed.
    short = ledger_of(at_ceiling, patients, shared)
    short["sources"][BOTNET_UNPROVEN] = short["sources"][BOTNET_UNPROVEN][:100]
    short["attacks"][BOTNET_UNPROVEN]["outcomes"] = {"refused (429)": 90}
    (addresses,) = (
        v
        for v in botnet_verdicts(
            short, {k: AttackLog.from_dict(v) for k, v in short["attacks"].items()}, criteria
        )
        if v.threshold.startswith("botnet:")
    )
    assert (addresses.passed, addresses.judged) == (True, False)
    assert addresses.measured.startswith("not judged")
    assert "0.25 core-s per admitted answer" in botnet_cost_note(few)

"""Every status /v1/check can answer is held to the floor and has the one size on the wire.

One case per way to be refused: each network tier, each ceiling and each identity bucket
of both admission classes, the junk bucket, the store down (503) and an overloaded hash
queue (503). Each case lowers only the limit it is about, so the refusal comes from that
bucket. A 429 from an identity bucket comes after parsing and a store round trip: sent
before the floor, its timing would tell which tier refused (docs/MUTATION.md, mutant
"a 429 that skips the floor").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from app.settings import Settings
from lookup_index.pepper import load_pepper
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import LIFTED, check_body, in_process, valid_probes
from tests.support.servers import free_port

FLOOR_MS = 80
FLOOR_S = FLOOR_MS / 1000


@dataclass(frozen=True)
class Case:
    """Settings that make one bucket refuse, and the (address, body kind) requests to send."""

    settings: dict[str, Any]
    requests: list[tuple[str, str]]
    expected: list[int]
    proven: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


ONE = "1/minute"
# body kinds: "new" a fresh identity, "same" the case's one identity, "junk" a malformed body
CASES: dict[str, Case] = {
    "junk": Case({"limits_junk": ONE}, [("127.0.40.1", "junk")] * 2, [422, 429]),
    "net": Case({"limits_per_network": ONE}, [("127.0.41.1", "new")] * 2, [200, 429]),
    "v4-24": Case(
        {"limits_per_ipv4_24": ONE}, [("127.0.42.1", "new"), ("127.0.42.2", "new")], [200, 429]
    ),
    "v6-48": Case(
        {"limits_per_ipv6_48": ONE},
        [("2001:db8:48:1::1", "new"), ("2001:db8:48:2::1", "new")],
        [200, 429],
    ),
    "v6-32": Case(
        {"limits_per_ipv6_32": ONE},
        [("2001:db8:1::1", "new"), ("2001:db8:2::1", "new")],
        [200, 429],
    ),
    "ceiling": Case(
        {"global_limit": ONE}, [("127.0.43.1", "new"), ("127.0.43.2", "new")], [200, 429]
    ),
    "u-identity": Case(
        {"limits_per_identity_unproven": ONE},
        [("127.0.44.1", "same"), ("127.0.45.1", "same")],
        [200, 429],
    ),
    "addr": Case(
        {"limits_per_address_proven": ONE}, [("127.0.46.1", "new")] * 2, [200, 429], proven=True
    ),
    "ceiling-p": Case(
        {"global_limit_proven": ONE, "admission_wait_ms": 0},
        [("127.0.47.1", "new"), ("127.0.47.2", "new")],
        [200, 429],
        proven=True,
    ),
    "identity": Case(
        {"limits_per_identity": ONE},
        [("127.0.48.1", "same"), ("127.0.49.1", "same")],
        [200, 429],
        proven=True,
    ),
}


async def timed(
    http: httpx.AsyncClient, body: Any, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = await http.post("/v1/check", json=body, headers=headers)
    return answer, time.perf_counter() - started


def assert_held(answers: list[tuple[httpx.Response, float]], settings: Settings) -> None:
    for answer, seconds in answers:
        status = answer.status_code
        assert seconds >= FLOOR_S, f"{status} left after {seconds * 1000:.1f} ms"
        assert len(answer.content) == settings.response_size, status
        assert answer.headers["content-type"] == "application/json", status


@pytest.mark.parametrize("bucket", CASES)
async def test_each_refusal_tier_is_held_to_the_floor(
    make_settings: Callable[..., Settings], dataset: Dataset, bucket: str
) -> None:
    case = CASES[bucket]
    settings = make_settings(**{**LIFTED, **case.settings, "response_floor_ms": FLOOR_MS})
    fresh = iter(valid_probes(dataset.probes)[1:])
    same = valid_probes(dataset.probes)[0]
    names = iter(["Martin", "Bernard", "Durand"])
    pepper = load_pepper(dataset.key)
    answers = []
    async with in_process(settings) as app:
        for address, kind in case.requests:
            if kind == "junk":
                body: Any = {"nir": 1}
            elif kind == "same":  # one NIR, other names: only the NIR bucket is shared
                body = check_body(replace(same, last_name=next(names)))
            else:
                body = check_body(next(fresh))
            if case.proven:
                body = {**body, "altcha": presolved(pepper)}
            async with app.client(address) as http:
                answers.append(await timed(http, body))
    assert [a.status_code for a, _ in answers] == case.expected
    assert_held(answers, settings)


async def test_a_store_outage_503_is_held_to_the_floor(
    make_settings: Callable[..., Settings], dataset: Dataset
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: refused at once
    settings = make_settings(
        **LIFTED, rate_limit_storage=closed, rate_limit_timeout_ms=200, response_floor_ms=FLOOR_MS
    )
    probe = valid_probes(dataset.probes)[0]
    async with in_process(settings) as app, app.client("127.0.50.1") as http:
        answers = [await timed(http, check_body(probe)), await timed(http, {"nir": 1})]
    assert [a.status_code for a, _ in answers] == [503, 503]
    assert_held(answers, settings)


async def test_an_overload_503_is_held_to_the_floor(
    make_settings: Callable[..., Settings], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.admission.queue import AdmissionQueue

    settings = make_settings(**LIFTED, response_floor_ms=FLOOR_MS)

    def no_slot_frees(self: AdmissionQueue) -> Any:
        from app.errors import Unavailable

        raise Unavailable

    monkeypatch.setattr(AdmissionQueue, "hash_slot", no_slot_frees)
    probe = valid_probes(dataset.probes)[0]
    async with in_process(settings) as app, app.client("127.0.51.1") as http:
        answers = [await timed(http, check_body(probe))]
    assert [a.status_code for a, _ in answers] == [503]
    assert_held(answers, settings)

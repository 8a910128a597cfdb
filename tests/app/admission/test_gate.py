"""The cheap refusal (app/admission/gate.py): exact, answered before the route, never in the
way of a proof of work."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

import pytest

from app.admission.gate import RefusedNetworks, may_carry_proof
from app.check_service import CheckService
from app.settings import Settings
from lookup_index.pepper import load_pepper
from tests.app.helpers import GENEROUS_LIMITS
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import check_body, in_process, valid_probes


async def test_a_refused_network_is_answered_before_the_route_until_its_window_has_room(
    make_settings: Callable[..., Settings], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[bytes] = []
    original = CheckService.answer

    def counting(self: CheckService, headers: Any, body: bytes, address: Any) -> Any:
        answered.append(body)
        return original(self, headers, body, address)

    monkeypatch.setattr(CheckService, "answer", counting)
    bodies = [check_body(p) for p in valid_probes(dataset.probes)]
    settings = make_settings(**{**GENEROUS_LIMITS, "limits_per_network": "1/minute"})
    async with in_process(settings) as app:
        first = await app.check("127.0.7.1", bodies[0])
        second = await app.check("127.0.7.1", bodies[1])  # full path: refused, then noted
        reached = len(answered)
        third = await app.check("127.0.7.1", bodies[2])
        junk = await app.check("127.0.7.1", {"nir": "1"})
        assert len(answered) == reached  # neither reached the route
        # A proof of work takes the full path: the proven class has its own allowance.
        proven = await app.check(
            "127.0.7.1", {**bodies[3], "altcha": presolved(load_pepper(dataset.key))}
        )
        other = await app.check("127.0.7.2", bodies[4])
        # The gate's refusals are counted as the route's would be, under the refusing bucket.
        refused_by_net = app.state.metrics.registry.get_sample_value(
            "selfcheck_refusals_total", {"bucket": "net", "admission": "unproven"}
        )
    assert refused_by_net == 3  # second (the full path), third and junk (the gate)
    assert [a.status_code for a in (first, second, third, junk, proven, other)] == [
        200, 429, 429, 429, 200, 200,
    ]  # fmt: skip
    # The gate's 429 is the route's, byte for byte but the padding.
    assert {len(a.content) for a in (second, third, junk)} == {settings.response_size}
    assert second.headers.keys() == third.headers.keys()
    assert second.headers["retry-after"] == third.headers["retry-after"]


def test_a_note_lapses_when_the_window_has_room_and_proofs_are_never_gated() -> None:
    refusals = RefusedNetworks()
    here, there = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1")
    refusals.note(here, time.time() + 60, "net")
    refusals.note(here, time.time() + 30, "v4-24")  # an earlier lapse keeps the later note
    refusals.note(there, time.time() - 1, "net")
    refusals.note(None, time.time() + 60, "net")
    assert refusals.refused(here) == "net"
    assert refusals.refused(there) is None
    assert refusals.refused(None) is None
    assert not may_carry_proof(b'{"nir": "1"}')
    assert may_carry_proof(b'{"altcha": "x"}')
    assert may_carry_proof(b'{"\\u0061ltcha": "x"}')  # an escaped key still decodes to altcha

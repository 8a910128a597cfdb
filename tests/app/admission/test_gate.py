"""The cheap refusal (app/admission/gate.py): exact, answered before the route, never in the
way of a proof of work."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

import app.admission.gate
from app.admission.gate import NetworkGate, RefusedNetworks, may_carry_proof
from app.check_service import CheckService
from app.padded_json import PaddedJSON
from app.settings import Settings
from lookup_index.pepper import load_pepper
from tests.app.helpers import CHECK, GENEROUS_LIMITS
from tests.support.clock import FakeClock, install_clock
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import check_body, in_process, valid_probes

HERE = ipaddress.ip_address("192.0.2.77")
JSON = {"content-type": "application/json"}


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


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return install_clock(monkeypatch, 1_000_000.0, app.admission.gate)


def test_a_note_lapses_exactly_when_its_window_has_room(clock: FakeClock) -> None:
    refusals = RefusedNetworks()
    refusals.note(HERE, clock.now + 10, "net")
    clock.now += 10 - 1e-6
    assert refusals.refused(HERE) == "net"
    clock.now += 1e-6  # the window's reset time: the store admits again, so must the gate
    assert refusals.refused(HERE) is None


def test_the_notes_are_bounded_and_lapsed_ones_make_room(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker with many addresses cannot grow the map without bound: past MAX_NOTED,
    lapsed notes are dropped, and if all are live, the new address is not noted (it then
    takes the full path, which refuses it all the same)."""
    monkeypatch.setattr(app.admission.gate, "MAX_NOTED", 2)
    refusals = RefusedNetworks()
    a, b, c, d = (ipaddress.ip_address(f"192.0.2.{n}") for n in (1, 2, 3, 4))
    refusals.note(a, clock.now + 60, "net")
    refusals.note(b, clock.now + 60, "v4-24")
    refusals.note(c, clock.now + 60, "net")  # full of live notes: c is not noted
    assert (refusals.refused(a), refusals.refused(b), refusals.refused(c)) == ("net", "v4-24", None)
    clock.now += 60  # a and b lapse: their windows have room
    refusals.note(c, clock.now + 60, "net")  # full: the lapsed are dropped, c is noted
    refusals.note(d, clock.now + 60, "v4-24")
    assert (refusals.refused(c), refusals.refused(d)) == ("net", "v4-24")


async def test_only_checks_are_gated(
    make_settings: Callable[..., Settings], dataset: Dataset
) -> None:
    """A refused address still gets its health check and every other route."""
    settings = make_settings(**{**GENEROUS_LIMITS, "limits_per_network": "1/minute"})
    bodies = [check_body(p) for p in valid_probes(dataset.probes)[:3]]
    async with in_process(settings) as app_, app_.client("127.0.8.1") as http:
        assert (await http.post(CHECK, json=bodies[0])).status_code == 200
        assert (await http.post(CHECK, json=bodies[1])).status_code == 429  # noted now
        assert (await http.post(CHECK, json=bodies[2])).status_code == 429  # by the gate
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get(CHECK)).status_code == 405
        too_big = b'{"nir": "' + b"1" * settings.max_body_bytes + b'"}'
        oversize = await http.post(CHECK, content=too_big, headers=JSON)
    # The body cap's refusal reaches the route through the gate: its own constant answer.
    assert oversize.status_code == 413
    assert len(oversize.content) == settings.response_size


def gated(inner: Callable[..., Any]) -> NetworkGate:
    refusals = RefusedNetworks()
    refusals.note(HERE, time.time() + 60, "net")
    return NetworkGate(inner, refusals=refusals, renderer=PaddedJSON(512), trusted_proxies=[])


SCOPE = {
    "type": "http",
    "path": CHECK,
    "method": "POST",
    "headers": [],
    "client": (str(HERE), 40000),
}


async def test_a_request_message_without_a_body_is_an_empty_body() -> None:
    """ASGI: ``body`` may be absent (it defaults to b""): the gate answers, not crashes."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def never(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("a gated request reached the app")

    await gated(never)(SCOPE, receive, send)
    assert sent[0]["status"] == 429


async def test_a_request_let_through_reads_its_body_once_then_the_client() -> None:
    """A body that may carry a proof takes the full path: the app reads the buffered message
    once, and every later read (a disconnect) comes from the client."""
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"altcha": "x"}', "more_body": False},
        {"type": "http.disconnect"},
    ]
    read: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        pass

    async def app_(scope: Scope, receive: Receive, send: Send) -> None:
        read.append(await receive())
        read.append(await receive())

    await gated(app_)(SCOPE, receive, send)
    assert [m["type"] for m in read] == ["http.request", "http.disconnect"]

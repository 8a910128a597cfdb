"""What a refusal leaves behind: the refusing bucket for the log line and the metrics, and,
for the unproven network tiers only, a note that lets the gate (app/admission/gate.py)
refuse the same address cheaply until that window has room, and not a moment longer.

On the memory store with its clock replaced (as tests/app/admission/test_moving_window_bound
does), so the window's edge is exact.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

import limits.storage.memory
import limits.strategies
import pytest

import app.admission.gate
from app.admission.buckets import Admission, Stage, Subject
from app.rate_limit import RateLimits
from app.request_note import RequestNote, current_note
from app.settings import Settings
from lookup_index import canonical_identity
from tests.lookup_index.helpers import PEPPER
from tests.support.clock import FakeClock, install_clock
from tests.support.dataset import Dataset
from tests.support.rate_limits import LIFTED, valid_probes

W = 60.0
T0 = 100_000 * W
HERE = ipaddress.ip_address("192.0.2.7")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    modules = (limits.storage.memory, limits.strategies, app.admission.gate)
    return install_clock(monkeypatch, T0, *modules)


@pytest.fixture
def note() -> Iterator[RequestNote]:
    """The request note the observing middleware opens for each request."""
    opened = RequestNote()
    token = current_note.set(opened)
    yield opened
    current_note.reset(token)


def rate_limits(make_settings: Callable[..., Settings], **limits_: str) -> RateLimits:
    limits = RateLimits(make_settings(**{**LIFTED, **limits_}))
    limits.bind_pepper(PEPPER)
    return limits


def test_an_unproven_network_refusal_names_its_bucket_and_is_noted_for_the_gate(
    make_settings: Callable[..., Settings], clock: FakeClock, note: RequestNote
) -> None:
    limits = rate_limits(make_settings, limits_per_network="1/minute")
    assert limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(HERE))
    assert not limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(HERE))
    assert (note.refused_by, note.refused_class) == ("net", "unproven")
    assert limits.refused_networks.refused(HERE) == "net"
    assert limits.refused_networks.refused(ipaddress.ip_address("192.0.2.8")) is None


def test_the_gate_s_note_lasts_until_the_window_has_room_and_no_longer(
    make_settings: Callable[..., Settings], clock: FakeClock, note: RequestNote
) -> None:
    limits = rate_limits(make_settings, limits_per_network="2/minute")
    assert limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(HERE))  # t = 0
    clock.now += 30
    assert limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(HERE))  # t = 30
    clock.now += 10
    assert not limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(HERE))  # t = 40
    clock.now = T0 + W - 1
    assert limits.refused_networks.refused(HERE) == "net"  # the t = 0 hit is still inside
    clock.now = T0 + W + 1
    assert limits.refused_networks.refused(HERE) is None  # it has left: room again
    assert limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(HERE))


def test_identity_and_proven_refusals_name_their_bucket_but_leave_the_address_ungated(
    make_settings: Callable[..., Settings], dataset: Dataset, clock: FakeClock, note: RequestNote
) -> None:
    """The gate refuses a whole address: only a full unproven network tier may tell it to.
    A person's identity bucket being full says nothing about the asker's address, and a
    proof of work is never gated."""
    probe = valid_probes(dataset.probes)[0]
    identity = canonical_identity(probe.nir, probe.birth_date, probe.last_name)
    limits = rate_limits(
        make_settings,
        limits_per_identity_unproven="1/minute",
        limits_per_identity="1/minute",
        limits_per_address_proven="1/minute",
    )
    asking = Subject(HERE, identity)
    assert limits.admit(Stage.IDENTITY, Admission.UNPROVEN, asking)
    assert not limits.admit(Stage.IDENTITY, Admission.UNPROVEN, asking)
    assert (note.refused_by, note.refused_class) == ("u-nir", "unproven")
    assert limits.admit(Stage.IDENTITY, Admission.PROVEN, asking)
    assert not limits.admit(Stage.IDENTITY, Admission.PROVEN, asking)
    assert (note.refused_by, note.refused_class) == ("nir", "proven")
    assert limits.admit(Stage.NETWORK, Admission.PROVEN, asking)
    assert not limits.admit(Stage.NETWORK, Admission.PROVEN, asking)
    assert (note.refused_by, note.refused_class) == ("addr", "proven")
    assert limits.refused_networks.refused(HERE) is None

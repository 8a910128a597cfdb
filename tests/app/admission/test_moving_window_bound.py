"""Every bucket the README puts on a moving window keeps its exact bound, on a fake clock.

README, "Strategies": the identity and unproven network buckets use the moving window,
"never more than N admitted in any interval of length W, whatever the alignment". A fixed
window would admit a second allowance just past its edge; a sliding-window counter
refuses or admits by its weighted estimate. Each bucket is driven alone (every other
limit lifted) through ``RateLimits.admit`` on the memory store, with the store's clock
replaced, so the test is exact and takes no wall time. The end-to-end version, on the
real clock, is tests/security/test_moving_window.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace

import limits.storage.memory
import limits.strategies
import pytest

from app.admission.buckets import Admission, Stage, Subject
from app.rate_limit import RateLimits
from app.settings import Settings
from lookup_index import Identity, canonical_identity
from tests.lookup_index.helpers import PEPPER
from tests.support.clock import FakeClock, install_clock
from tests.support.dataset import Dataset
from tests.support.rate_limits import LIFTED, valid_probes, with_order_number

N, W = 3, 60
#: Window starts aligned on the clock, so a clock-aligned strategy cannot pass by luck.
T0 = 100_000 * W

#: bucket -> (its setting, stage, class, address of the i-th request, identity varies?)
MOVING: dict[str, tuple[str, Stage, Admission, Callable[[int], str], str]] = {
    "net": ("limits_per_network", Stage.NETWORK, Admission.UNPROVEN, lambda i: "192.0.2.7", ""),
    "v4-24": (
        "limits_per_ipv4_24",
        Stage.NETWORK,
        Admission.UNPROVEN,
        lambda i: f"192.0.2.{i + 1}",
        "",
    ),
    "v6-48": (
        "limits_per_ipv6_48",
        Stage.NETWORK,
        Admission.UNPROVEN,
        lambda i: f"2001:db8:5:{i + 1}::1",
        "",
    ),
    "v6-32": (
        "limits_per_ipv6_32",
        Stage.NETWORK,
        Admission.UNPROVEN,
        lambda i: f"2001:db8:{i + 1}::1",
        "",
    ),
    "u-nir": (
        "limits_per_identity_unproven",
        Stage.IDENTITY,
        Admission.UNPROVEN,
        lambda i: "192.0.2.7",
        "names",
    ),
    "u-namebirth": (
        "limits_per_identity_unproven",
        Stage.IDENTITY,
        Admission.UNPROVEN,
        lambda i: "192.0.2.7",
        "nirs",
    ),
    "nir": (
        "limits_per_identity",
        Stage.IDENTITY,
        Admission.PROVEN,
        lambda i: "192.0.2.7",
        "names",
    ),
    "namebirth": (
        "limits_per_identity",
        Stage.IDENTITY,
        Admission.PROVEN,
        lambda i: "192.0.2.7",
        "nirs",
    ),
    # Every typing of one victim's NIR prefix: new order numbers and new names alike.
    "nirprefix": (
        "limits_per_nir_prefix",
        Stage.IDENTITY,
        Admission.PROVEN,
        lambda i: "192.0.2.7",
        "both",
    ),
}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return install_clock(monkeypatch, float(T0), limits.storage.memory, limits.strategies)


def test_the_readme_s_moving_window_buckets_are_the_table_s(
    make_settings: Callable[..., Settings],
) -> None:
    table = RateLimits(make_settings()).table
    on_moving = {b.name for b in table if b.strategy == "moving-window"}
    unproven_network = {
        b.name for b in table if b.stage is Stage.NETWORK and b.admission is Admission.UNPROVEN
    }
    identity = {b.name for b in table if b.stage is Stage.IDENTITY}
    assert on_moving == unproven_network | identity == set(MOVING)


@pytest.mark.parametrize("bucket", MOVING)
def test_a_burst_straddling_the_edge_gets_exactly_the_moving_window_s_allowance(
    make_settings: Callable[..., Settings], dataset: Dataset, clock: FakeClock, bucket: str
) -> None:
    setting, stage, admission, address_of, varying = MOVING[bucket]
    rate_limits = RateLimits(make_settings(**{**LIFTED, setting: f"{N}/minute"}))
    rate_limits.bind_pepper(PEPPER)
    probe = valid_probes(dataset.probes)[0]
    names = iter(f"Nom{chr(65 + i)}" for i in range(40))
    orders = iter(range(1, 40))
    requests = iter(range(40))

    def identity() -> Identity | None:
        if stage is not Stage.IDENTITY:
            return None
        # Only the bucket under test is shared: the other identity bucket sees new values.
        p = probe
        if varying in ("names", "both"):
            p = replace(p, last_name=next(names))
        if varying in ("nirs", "both"):
            p = with_order_number(p, next(orders))
        return canonical_identity(p.nir, p.birth_date, p.last_name)

    def admitted(count: int) -> int:
        results = []
        for _ in range(count):
            address = ipaddress.ip_address(address_of(next(requests)))
            results.append(rate_limits.admit(stage, admission, Subject(address, identity())))
        return sum(results)

    assert admitted(1) == 1  # t = 0
    clock.now += W / 2
    assert admitted(N) == N - 1  # t = W/2: the rest of the allowance, then full
    clock.now += W / 2 + 3
    assert admitted(N) == 1  # just past the edge: only the t = 0 hit has left the window
    clock.now += W / 2 - 4
    assert admitted(1) == 0  # just before the W/2 hits leave
    clock.now += 2
    assert admitted(N) == N - 1  # they left; the one admitted past the edge still counts

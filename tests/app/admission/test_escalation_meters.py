"""In process: the per-site escalation steps and the proven-load meter of ``RateLimits``.

Until now only the multi-process admission tests exercised them. A site (IPv4 /24, IPv6
/48) past ``SELFCHECK_POW_ESCALATE_AFTER`` proven checks a minute pays one step more, one
more each time its rate doubles (at most 16); other sites are not affected. The proven
load is the share of the proven ceiling spent over the last minute.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from app.admission.buckets import Admission, Subject
from app.rate_limit import RateLimits, StorageUnavailable
from app.settings import Settings
from tests.lookup_index.helpers import PEPPER
from tests.support.rate_limits import LIFTED


def subject(address: str) -> Subject:
    return Subject(ipaddress.ip_address(address))


@pytest.fixture
def limits(make_settings: Callable[..., Settings]) -> RateLimits:
    settings = make_settings(**{**LIFTED, "pow_escalate_after": "4/minute"})
    rate_limits = RateLimits(settings)
    rate_limits.bind_pepper(PEPPER)
    return rate_limits


@pytest.mark.parametrize(
    ("first", "same_site", "other_site"),
    [
        ("198.51.100.7", "198.51.100.200", "198.51.101.7"),
        ("2001:db8:7:1::1", "2001:db8:7:ffff::2", "2001:db8:8:1::1"),
    ],
)
def test_a_site_pays_one_step_more_each_time_its_rate_doubles(
    limits: RateLimits, first: str, same_site: str, other_site: str
) -> None:
    steps = []
    for count in range(1, 33):
        limits.count_proven(subject(first if count % 2 else same_site))
        steps.append(limits.network_step(subject(first)))
    # 4/minute: +1 from 4 checks, +2 from 8, +3 from 16, +4 from 32.
    assert steps[:3] == [0, 0, 0]
    assert steps[3] == 1
    assert steps[6:8] == [1, 2]
    assert steps[14:16] == [2, 3]
    assert steps[30:32] == [3, 4]
    assert limits.network_step(subject(same_site)) == 4  # the whole site, not one address
    assert limits.network_step(subject(other_site)) == 0


def test_the_escalation_stops_at_16_steps(make_settings: Callable[..., Settings]) -> None:
    # 1/day is 1/1440 a minute: 60 checks are past 2^16 times that, 17 doublings.
    rate_limits = RateLimits(make_settings(**{**LIFTED, "pow_escalate_after": "1/day"}))
    rate_limits.bind_pepper(PEPPER)
    for _ in range(60):
        rate_limits.count_proven(subject("192.0.2.1"))
    assert rate_limits.network_step(subject("192.0.2.1")) == 16


def test_the_proven_load_is_the_share_of_the_proven_ceiling_spent(
    make_settings: Callable[..., Settings],
) -> None:
    rate_limits = RateLimits(make_settings(**{**LIFTED, "global_limit_proven": "600/minute"}))
    rate_limits.bind_pepper(PEPPER)
    assert rate_limits.proven_load() == 0
    for _ in range(60):
        assert rate_limits.spend_ceiling(Admission.PROVEN)  # 60 of 600 a minute
    assert rate_limits.proven_load() == pytest.approx(0.1)
    assert rate_limits.spend_ceiling(Admission.UNPROVEN)  # the unproven class is not counted
    assert rate_limits.proven_load() == pytest.approx(0.1)


def test_a_failing_meter_is_the_503(limits: RateLimits, monkeypatch: pytest.MonkeyPatch) -> None:
    from limits.errors import StorageError
    from limits.storage import MemoryStorage

    def down(*args: object, **kwargs: object) -> object:
        raise StorageError(ConnectionError("down"))

    for method in ("get_sliding_window", "acquire_sliding_window_entry"):
        monkeypatch.setattr(MemoryStorage, method, down)
    with pytest.raises(StorageUnavailable):
        limits.network_step(subject("192.0.2.1"))
    with pytest.raises(StorageUnavailable):
        limits.count_proven(subject("192.0.2.1"))
    with pytest.raises(StorageUnavailable):
        limits.proven_load()


def test_a_solution_is_refused_again_until_its_ttl_has_passed(
    limits: RateLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    import limits.storage.memory as memory

    now = [1_000_000.0]
    monkeypatch.setattr(memory, "time", types.SimpleNamespace(time=lambda: now[0]))
    assert limits.first_use("signature", 1)
    assert not limits.first_use("signature", 1)
    now[0] += 1.5
    assert limits.first_use("signature", 1)  # a 1 s TTL: spent for 1 s, not 2
    assert limits.first_use("another", 0)  # a TTL under a second still counts as one
    assert not limits.first_use("another", 0)

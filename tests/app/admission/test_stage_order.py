"""In process: a request refused at one stage never spends the budgets of the stages after it.

A network over its limit must not spend the global ceiling of its class (else one network
hammering the service would refuse everyone else), and a request refused by its identity
buckets must not spend it either. These used to be caught only by a multi-process test
(tests/app/admission/test_admission_processes.py); docs/MUTATION.md lists the mutants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.admission.buckets import Admission
from app.rate_limit import RateLimits
from app.settings import Settings
from lookup_index.pepper import load_pepper
from tests.lookup_index.helpers import PEPPER
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import LIFTED, check_body, in_process, valid_probes

#: class -> (its per-network setting, its ceiling setting)
CLASSES = {
    "unproven": ("limits_per_network", "global_limit", "limits_per_identity_unproven"),
    "proven": ("limits_per_address_proven", "global_limit_proven", "limits_per_identity"),
}


@pytest.mark.parametrize("admission", CLASSES)
async def test_a_network_over_its_limit_never_spends_the_global_ceiling(
    make_settings: Callable[..., Settings], dataset: Dataset, admission: str
) -> None:
    network, ceiling, _ = CLASSES[admission]
    settings = make_settings(
        **{**LIFTED, network: "1/minute", ceiling: "3/minute", "admission_wait_ms": 0}
    )
    bodies = iter([check_body(p) for p in valid_probes(dataset.probes)])
    pepper = load_pepper(dataset.key)

    def body() -> dict[str, Any]:
        sent = next(bodies)
        return {**sent, "altcha": presolved(pepper)} if admission == "proven" else sent

    async with in_process(settings) as app:
        hammering = await app.statuses([("127.0.80.1", body()) for _ in range(6)])
        others = await app.statuses([(f"127.0.{81 + i}.1", body()) for i in range(3)])
    assert hammering == [200] + [429] * 5
    # The ceiling holds 3: the hammering network spent 1 of it, so 2 others pass, then full.
    assert others == [200, 200, 429]


@pytest.mark.parametrize("admission", CLASSES)
async def test_an_identity_over_its_limit_never_spends_the_global_ceiling(
    make_settings: Callable[..., Settings], dataset: Dataset, admission: str
) -> None:
    _, ceiling, identity = CLASSES[admission]
    settings = make_settings(
        **{**LIFTED, identity: "1/day", ceiling: "3/minute", "admission_wait_ms": 0}
    )
    target, *rest = valid_probes(dataset.probes)
    pepper = load_pepper(dataset.key)

    def body(probe: Any) -> dict[str, Any]:
        sent = check_body(probe)
        return {**sent, "altcha": presolved(pepper)} if admission == "proven" else sent

    async with in_process(settings) as app:
        same = await app.statuses([(f"127.0.85.{i}", body(target)) for i in range(1, 6)])
        others = await app.statuses([(f"127.0.86.{i}", body(p)) for i, p in enumerate(rest[:3])])
    assert same == [200] + [429] * 4
    assert others == [200, 200, 429]


@pytest.mark.parametrize("admission", [Admission.UNPROVEN, Admission.PROVEN])
def test_the_ceiling_is_tested_without_being_spent(
    make_settings: Callable[..., Settings], admission: Admission
) -> None:
    """A full ceiling reads as full; reading it spends nothing (the queue polls it)."""
    ceiling = CLASSES[admission.value][1]
    limits = RateLimits(make_settings(**{**LIFTED, ceiling: "2/minute"}))
    limits.bind_pepper(PEPPER)
    for _ in range(5):
        assert limits.ceiling_open(admission)
    assert limits.spend_ceiling(admission)
    assert limits.ceiling_open(admission)
    assert limits.spend_ceiling(admission)
    assert not limits.ceiling_open(admission)
    assert not limits.spend_ceiling(admission)
    other = Admission.PROVEN if admission is Admission.UNPROVEN else Admission.UNPROVEN
    assert limits.ceiling_open(other)  # each class has its own ceiling

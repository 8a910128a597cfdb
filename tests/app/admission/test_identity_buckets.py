"""Name variants and unknown birth days through the API (issue 14), in process.

Variants must find patients without buying an attacker anything: every typing
of one identity spends one budget, and the NIR-prefix bucket holds an attacker
completing a victim's NIR whatever names they rotate. ``00`` dates are strict
ISO in the API and match only a date recorded as unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from app.settings import Settings
from lookup_index import canonical_identity, normalise_nir
from lookup_index.generator import Probe
from tests.support.dataset import Dataset
from tests.support.rate_limits import (
    LIFTED,
    check_body,
    in_process,
    valid_probes,
    with_order_number,
)


@pytest.fixture
def limited(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        return make_settings(rate_limit_storage="memory://", **{**LIFTED, **overrides})

    return make


def plain_probe(dataset: Dataset) -> Probe:
    """A well-formed probe whose name is one plain word."""
    for probe in valid_probes(dataset.probes):
        if probe.last_name.isalpha() and probe.last_name.isascii() and len(probe.last_name) > 3:
            return probe
    raise AssertionError("no plain name in the dataset")


def prefix(probe: Probe) -> str:
    return normalise_nir(probe.nir)[:10]


async def test_every_typing_of_a_name_spends_one_name_and_birth_budget(
    limited: Callable[..., Settings], dataset: Dataset
) -> None:
    target = plain_probe(dataset)
    name = target.last_name
    typings = [name, f"de {name}", f"De{name.lower()}", f"d'{name}", f"LE {name}", f"La{name}"]
    canonicals = {canonical_identity(target.nir, target.birth_date, n).last_name for n in typings}

    assert len(canonicals) > 1  # glued particles are other names to the matcher...
    attempts = [
        (f"127.0.8.{order}", check_body(replace(with_order_number(target, order), last_name=n)))
        for order, n in enumerate(typings, start=1)
    ]
    async with in_process(limited(limits_per_identity_unproven="3/day")) as app:
        statuses = await app.statuses(attempts)
    assert statuses == [200, 200, 200, 429, 429, 429]  # ...but one budget to the limiter


async def test_the_nir_prefix_bucket_holds_order_numbers_whatever_the_names(
    limited: Callable[..., Settings], dataset: Dataset
) -> None:
    probes = valid_probes(dataset.probes)
    target = plain_probe(dataset)
    names = ["Martin", "Bernard", "Durand", "Petit", "Leroy", "Moreau"]
    attempts = [
        (f"127.0.9.{order}", check_body(replace(with_order_number(target, order), last_name=n)))
        for order, n in enumerate(names, start=1)
    ]
    other = next(p for p in probes if prefix(p) != prefix(target))
    async with in_process(limited(limits_per_nir_prefix="4/day")) as app:
        statuses = await app.statuses(attempts)
        unrelated = await app.statuses([("127.0.9.99", check_body(other))])
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert unrelated == [200]


async def test_unknown_birth_days_are_found_and_only_by_00(
    make_settings: Callable[..., Settings], dataset: Dataset
) -> None:
    export = dataset.export.read_text(encoding="utf-8")
    unknown = [p for p in dataset.by_expected("affected") if p.birth_date.endswith("-00")]
    assert unknown, "the generator writes patients with an unknown birth day"
    assert "00/00/" in export or "-00-00" in export
    probe = unknown[0]
    async with in_process(make_settings(**LIFTED)) as app:
        found = (await app.check("127.0.10.1", check_body(probe))).json()["status"]
        # 00 matches only a day recorded as unknown: a real day is another date.
        year, month = probe.birth_date[:4], probe.birth_date[5:7]
        known = f"{year}-{month if month != '00' else '06'}-15"
        other = (await app.check("127.0.10.2", {**check_body(probe), "birth_date": known})).json()
        # Not ISO: the API stays strict, the widget does the friendly parsing.
        french = {**check_body(probe), "birth_date": f"00/{month}/{year}"}
        refused = (await app.check("127.0.10.3", french)).status_code
    assert found == "affected"
    assert other["status"] == "not_found"
    assert refused == 422

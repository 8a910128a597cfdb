"""Localised advice: what was exposed means, which scams to expect, what to do, the caveat."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from app.advice import LANGS, AdviceCatalogue, negotiate_lang
from lookup_index import CATEGORIES
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of
from tests.support.dataset import Dataset

SCAM_WORDS = {
    "fr": ("CPAM", "carte Vitale", "hameçonnage"),
    "en": ("CPAM", "Carte Vitale", "hishing"),
}
NO_GUARANTEE = {"fr": "pas une garantie", "en": "not a guarantee"}


def texts(section: dict[str, Any]) -> str:
    return orjson.dumps(section).decode()


@pytest.fixture(scope="module")
def catalogue() -> AdviceCatalogue:
    return AdviceCatalogue.load()


@pytest.mark.parametrize("lang", LANGS)
def test_every_category_has_a_meaning(catalogue: AdviceCatalogue, lang: str) -> None:
    advice = catalogue.advice(lang, "affected", list(CATEGORIES))  # type: ignore[arg-type]
    assert [e["category"] for e in advice["exposed"]] == list(CATEGORIES)
    assert all(len(e["meaning"]) > 20 for e in advice["exposed"])


@pytest.mark.parametrize("lang", LANGS)
def test_affected_advice_warns_of_the_expected_scams(catalogue: AdviceCatalogue, lang: str) -> None:
    advice = catalogue.advice(lang, "affected", ["identity", "nir"])  # type: ignore[arg-type]
    scams = texts({"scams": advice["scams"], "actions": advice["actions"]})
    for word in SCAM_WORDS[lang]:
        assert word.lower() in scams.lower(), word
    assert advice["actions"]
    assert advice["report"]


@pytest.mark.parametrize("lang", LANGS)
def test_not_found_says_it_is_not_a_guarantee(catalogue: AdviceCatalogue, lang: str) -> None:
    advice = catalogue.advice(lang, "not_found", [])  # type: ignore[arg-type]
    assert NO_GUARANTEE[lang] in advice["caveat"]
    assert advice["exposed"] == []
    assert set(advice) == set(catalogue.advice(lang, "affected", ["nir"]))  # type: ignore[arg-type]


@pytest.mark.parametrize("lang", LANGS)
def test_no_doctor_or_practice_is_named(catalogue: AdviceCatalogue, lang: str) -> None:
    everything = texts(catalogue.by_lang[lang])
    assert not re.search(r"\b(Dr|Docteur|Doctor|Cabinet|Practice)\.?\s+[A-Z][a-z]", everything)


@pytest.mark.parametrize(
    ("requested", "accept_language", "expected"),
    [
        (None, "", "fr"),
        (None, "en", "en"),
        (None, "en-GB,en;q=0.9,fr;q=0.8", "en"),
        (None, "fr;q=0.5, en;q=0.9", "en"),
        (None, "de-DE, en;q=0.3, fr;q=0.2", "en"),
        (None, "de, es", "fr"),
        (None, "en;q=bogus, fr", "fr"),
        (None, "*", "fr"),
        ("en", "fr", "en"),
        ("fr", "en", "fr"),
    ],
)
def test_language_negotiation(requested: str | None, accept_language: str, expected: str) -> None:
    assert negotiate_lang(requested, accept_language) == expected


def test_a_huge_accept_language_is_cheap() -> None:
    assert negotiate_lang(None, "de," * 10_000 + "en") == "fr"  # only the first 20 tags count


async def test_the_answer_carries_the_advice_of_its_language(
    app_factory: Callable[..., Any], dataset: Dataset, catalogue: AdviceCatalogue
) -> None:
    _, http = await app_factory(**GENEROUS_LIMITS)
    hit = dataset.by_expected("affected")[0]
    answer = orjson.loads(
        (await http.post(CHECK, json=body_of(hit), headers={"accept-language": "en"})).content
    )
    assert answer["lang"] == "en"
    assert answer["advice"] == catalogue.advice("en", "affected", answer["exposed"])
    answer = orjson.loads(
        (
            await http.post(CHECK, json=body_of(hit, lang="fr"), headers={"accept-language": "en"})
        ).content
    )
    assert answer["lang"] == "fr"
    assert answer["advice"]["title"] == catalogue.by_lang["fr"]["affected"]["title"]

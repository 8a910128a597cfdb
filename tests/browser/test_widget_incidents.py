"""The widget with several incidents served, in Chromium, against a real `python -m app serve`.

SELFCHECK_INDEX_PATH names two indexes (tests/support/incidents.py builds the second
`--like` the session's): a patient may be in the first incident only, the second only,
both, or neither. What the patient reads: the incidents that concern them, by their
labels, each with what it exposed, and everything exposed; what the practice's page
(another origin) can see of it: the same for every one of the four.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Frame, Page, expect

from lookup_index import IndexReader
from lookup_index.generator import Probe
from tests.browser.helpers import (
    CATALOGUES,
    Seen,
    Site,
    active_id,
    expect_answer_in_view,
    expect_fits,
    hint_free,
    open_tab,
    screenshot,
    seen_by_the_host,
    serve_site,
    submit,
    widget,
)
from tests.support.dataset import Dataset
from tests.support.incidents import SECOND_CATEGORIES, TwoIncidents, build_two_incidents

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass(frozen=True)
class Case:
    """A probe, and the categories each incident exposed of it (absent: not affected)."""

    name: str
    probe: Probe
    exposed: dict[str, tuple[str, ...]]


@pytest.fixture(scope="module")
def two(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TwoIncidents:
    return build_two_incidents(dataset, tmp_path_factory.mktemp("incidents"))


@pytest.fixture(scope="module")
def several(
    dataset: Dataset, two: TwoIncidents, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    env = {
        "SELFCHECK_INDEX_PATH": f"{two.first},{two.second}",
        "SELFCHECK_KEY_FILE": str(dataset.key),
    }
    with serve_site(tmp_path_factory.mktemp("several-site"), env) as site:
        yield site


def label_of(index: Path) -> str:
    with IndexReader.open(index) as reader:
        return reader.header.incident_label


@pytest.fixture(scope="module")
def cases(two: TwoIncidents) -> list[Case]:
    first, second = label_of(two.first), label_of(two.second)
    assert first != second

    def pick(probes: list[Probe]) -> Probe:
        # The frame's height while typing must not depend on the probe (no hint shows).
        return next(p for p in probes if hint_free(p))

    first_only, second_only, both = pick(two.first_only), pick(two.second_only), pick(two.both)
    return [
        Case("first only", first_only, {first: first_only.categories}),
        Case("neither", pick(two.neither), {}),
        Case("second only", second_only, {second: second_only.categories}),
        Case("both", both, {first: both.categories, second: tuple(SECOND_CATEGORIES)}),
    ]


def check_what_the_patient_reads(frame: Frame, case: Case, lang: str) -> None:
    texts = CATALOGUES[lang]["answer"]
    labels = {code: texts["categories"][code]["label"] for code in texts["categories"]}
    answer = frame.locator("#answer")
    if not case.exposed:
        expect(frame.locator("#answer-title")).to_have_text(texts["not_found"]["title"])
        expect(frame.locator("#incidents")).to_have_count(0)
        expect(frame.locator("#exposed")).to_have_count(0)
        return
    expect(frame.locator("#answer-title")).to_have_text(texts["affected"]["title"])
    expect(answer.locator(".incident")).to_have_text(texts["incidents"])
    items = frame.locator("#incidents > li")
    # Only the incidents that concern the patient, in the served order, by their labels.
    expect(items.locator(".category")).to_have_text(list(case.exposed))
    for item, codes in zip(items.all(), case.exposed.values(), strict=True):
        told = item.inner_text()
        assert codes, case.name
        for code, label in labels.items():
            assert (label in told) == (code in codes), (case.name, code, told)
    everything = list(dict.fromkeys(c for codes in case.exposed.values() for c in codes))
    shown = frame.locator("#exposed li").evaluate_all("i => i.map(li => li.dataset.category)")
    assert sorted(shown) == sorted(everything), case.name
    for code in everything:
        expect(frame.locator(f'#exposed li[data-category="{code}"]')).to_contain_text(labels[code])


def seen_for(page: Page, url: str, case: Case, lang: str) -> Seen:
    page.goto(url)
    frame = widget(page)
    expect_fits(page, frame)
    submit(frame, case.probe)
    check_what_the_patient_reads(frame, case, lang)
    assert active_id(frame) == "answer-title"
    expect_fits(page, frame)
    expect_answer_in_view(page, frame)
    return seen_by_the_host(page)


def test_several_incidents_are_shown_and_the_host_cannot_tell_them_apart(
    several: Site, browser: Any, cases: list[Case]
) -> None:
    """Affected in the first incident only, the second only, both, or neither: the patient
    reads which incidents concern them and what each exposed; the host page's scripts see
    the same height, messages, title and scroll for all four (as with one incident:
    test_widget.py::test_the_host_page_cannot_tell_affected_from_not_found). On a phone,
    where the lists wrap the most; then the last answer in English."""
    tab = open_tab(browser, width=320)
    page = tab.page
    try:
        url = f"{several.host_origin}/host-fr.html"
        seen = {case.name: seen_for(page, url, case, "fr") for case in cases}
        heights = {name: s.height for name, s in seen.items()}
        print("iframe height on the host page for every case:", heights)
        assert all(s == seen["neither"] for s in seen.values()), seen
        assert [r.post_data_json["lang"] for r in tab.checks()] == ["fr"] * len(cases)
        screenshot(page, "several-incidents-fr")
        assert cases[-1].name == "both"
        frame = widget(page)
        frame.locator("#switch").click()
        check_what_the_patient_reads(frame, cases[-1], "en")
        screenshot(page, "several-incidents-en")
    finally:
        page.context.close()
